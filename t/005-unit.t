#!/usr/bin/perl

# Unit tests of the pure C parts (src/lib/), so that `prove -r t` covers
# them: build the test programs with `make unit-build`, run each one and
# read its TAP.  A program passes when it exits 0, prints a plan, and every
# planned test printed "ok".
#
# UNIT_ASAN=1 builds and runs them under AddressSanitizer and UBSan.

use strict;
use warnings;

use FindBin;
use Test::More;

my $root = "$FindBin::Bin/..";
# one program per file of src/lib/ (the list t/unit/unit.mk builds)
my @programs = map { m{/(cm_\w+)\.c$} ? "test_$1" : () }
               sort glob("$root/src/lib/*.c");
ok(@programs > 0, 'src/lib has files');

my ($target, $bin) = $ENV{UNIT_ASAN}
    ? ('unit-asan-build', 't/unit/bin/asan')
    : ('unit-build', 't/unit/bin');

my $log = `make -s -C '$root' --no-print-directory $target 2>&1`;
is($?, 0, "make $target") or diag($log);

for my $program (@programs) {
    my $path = "$root/$bin/$program";

    subtest $program => sub {
        ok(-x $path, "$program is built") or return;

        my $out = `'$path' 2>&1`;
        my $status = $? >> 8;
        my $signal = $? & 127;

        my ($plan) = $out =~ /^1\.\.(\d+)$/m;
        my @passed = $out =~ /^ok \d+/mg;
        my @failed = $out =~ /^(not ok .*)$/mg;

        is($signal, 0, 'no signal');
        is($status, 0, 'exit status 0');
        ok(defined $plan && $plan > 0, 'a plan');
        is(scalar(@failed), 0, 'no "not ok"');
        is(scalar(@passed), $plan // -1, "$plan tests passed")
            if defined $plan;

        diag($out) if @failed || $status || $signal || !defined $plan;
    };
}

done_testing();
