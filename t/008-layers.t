#!/usr/bin/perl

# The layers of src/README.md hold: t/layers finds no include or call
# that points up a layer, no cycle between files, no src/lib file without
# its unit test and no file over the length limit.  No server.

use strict;
use warnings;

use FindBin;
use Test::More;

my $out = `'$FindBin::Bin/layers' 2>&1`;
is($?, 0, 't/layers finds no violation') or diag($out);

# the check can fail: a file of a lower layer that calls up is refused
my $probe = "$FindBin::Bin/../src/lib/cm_layers_probe.c";
open my $fh, '>', $probe or die "$probe: $!";
print $fh "int cm_layers_probe(void);\n"
        . "int\ncm_layers_probe(void)\n{\n"
        . "    return (int) ngx_commerce_handler(0);\n}\n";
close $fh;
$out = `'$FindBin::Bin/layers' 2>&1`;
unlink $probe;
like($out, qr/cm_layers_probe\.c \(lib\) calls ngx_commerce_handler .*points up/,
     'a call from src/lib up to src/http is reported');

# and a function of src/core named after another file is reported
$probe = "$FindBin::Bin/../src/core/ngx_commerce_probe.c";
open $fh, '>', $probe or die "$probe: $!";
print $fh "int\nngx_commerce_other_thing(void)\n{\n    return 0;\n}\n";
close $fh;
$out = `'$FindBin::Bin/layers' 2>&1`;
unlink $probe;
like($out, qr/ngx_commerce_probe\.c: ngx_commerce_other_thing does not carry/,
     "a function without its file's prefix is reported");
like($out, qr/ngx_commerce_other_thing is not declared in a header: static/,
     'a function no header declares is reported');

done_testing;
