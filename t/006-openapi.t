#!/usr/bin/perl
# conf/openapi.json and the route table agree, and the document holds
# together (no server needed):
#
#   - it parses as JSON and is OpenAPI 3.1.x;
#   - every $ref resolves inside the document (JSON pointers);
#   - every operation has a unique camelCase operationId, a success
#     response, and a 4xx response whose body is the Error schema (every
#     4xx and 5xx body is); every {param} of its path is a required path
#     parameter; its security names declared schemes;
#   - the route table: every NGX_COMMERCE_ROUTE(...) row of src/domain (read
#     by t/routes) is an operation with the same method, path and
#     operationId, and every operation of the spec is a row.  HEAD rides on
#     GET and is no row.
#
# Core Perl only (JSON::PP).  t/096-openapi-responses.t checks real
# answers against the schemas.

use strict;
use warnings;
use FindBin;
use JSON::PP;
use Test::More;

my $ROOT = "$FindBin::Bin/..";
my $SPEC = "$ROOT/conf/openapi.json";

my $text = do {
    open my $fh, '<:raw', $SPEC or BAIL_OUT("$SPEC: $!");
    local $/;
    <$fh>;
};
my $spec = eval { JSON::PP->new->utf8->decode($text) };
ok($spec, 'conf/openapi.json parses as JSON') or BAIL_OUT("not JSON: $@");
like($spec->{openapi} // '', qr/\A3\.1\.\d+\z/, 'openapi: 3.1.x');
ok(ref $spec->{paths} eq 'HASH' && %{ $spec->{paths} }, 'it has paths');

# --- $ref ----------------------------------------------------------------

# the value at a local JSON pointer ("#/components/schemas/Order"), or undef
sub pointer {
    my ($ref) = @_;
    return undef unless $ref =~ m{\A#(/.*)?\z};
    my $node = $spec;
    for my $tok (split m{/}, substr($1 // '', 1), -1) {
        $tok =~ s/~1/\//g;
        $tok =~ s/~0/~/g;
        if (ref $node eq 'HASH' && exists $node->{$tok}) {
            $node = $node->{$tok};
        } elsif (ref $node eq 'ARRAY' && $tok =~ /\A(?:0|[1-9]\d*)\z/
                 && $tok < @$node) {
            $node = $node->[$tok];
        } else {
            return undef;
        }
    }
    return $node;
}

# an object with its $ref followed (one level after another)
sub deref {
    my ($node) = @_;
    my %seen;
    while (ref $node eq 'HASH' && defined $node->{'$ref'}) {
        return undef if $seen{ $node->{'$ref'} }++;
        $node = pointer($node->{'$ref'});
    }
    return $node;
}

my (@refs, @bad_refs);
my $walk;
$walk = sub {
    my ($node, $where) = @_;
    if (ref $node eq 'HASH') {
        for my $k (sort keys %$node) {
            if ($k eq '$ref' && !ref $node->{$k}) {
                push @refs, $node->{$k};
                push @bad_refs, "$where: $node->{$k}"
                    unless defined pointer($node->{$k});
            } else {
                $walk->($node->{$k}, "$where/$k");
            }
        }
    } elsif (ref $node eq 'ARRAY') {
        $walk->($node->[$_], "$where/$_") for 0 .. $#$node;
    }
};
$walk->($spec, '#');
ok(@refs > 0, scalar(@refs) . ' $refs in the document');
is_deeply(\@bad_refs, [], 'every $ref resolves to a local JSON pointer')
    or do { diag("unresolved: $_") for @bad_refs };

# --- operations ------------------------------------------------------------

my @METHODS = qw(get put post delete options head patch trace);
my $schemes = $spec->{components}{securitySchemes} // {};
my $error_ref = '#/components/schemas/Error';

# is this schema the Error schema, or Error narrowed (allOf with it)?
sub is_error_schema {
    my ($s) = @_;
    return 0 unless ref $s eq 'HASH';
    return 1 if ($s->{'$ref'} // '') eq $error_ref;
    return scalar grep { ref $_ eq 'HASH' && ($_->{'$ref'} // '') eq $error_ref }
        @{ $s->{allOf} // [] };
}

my (%ops, %ids);

for my $path (sort keys %{ $spec->{paths} }) {
    my $item = deref($spec->{paths}{$path});
    my @path_params = map { deref($_) } @{ $item->{parameters} // [] };

    for my $m (grep { $item->{$_} } @METHODS) {
        my $op = $item->{$m};
        my $name = uc($m) . " $path";
        my $id = $op->{operationId};

        ok(defined $id && $id =~ /\A[a-z][A-Za-z0-9]*\z/,
            "$name: operationId is camelCase") or next;
        ok(!$ids{$id}++, "$name: operationId $id is unique");
        $ops{uc($m) . " $path"} = $id;

        my $resp = $op->{responses} // {};
        ok(scalar(grep { /\A2\d\d\z/ } keys %$resp), "$id: a 2xx response");

        my (@err4, @not_error);
        for my $status (sort keys %$resp) {
            my $r = deref($resp->{$status});
            ok(ref $r eq 'HASH' && defined $r->{description},
                "$id $status: a response object with a description");
            next unless $status =~ /\A[45]\d\d\z/;
            my $schema = $r->{content}{'application/json'}{schema};
            if (is_error_schema($schema)) {
                push @err4, $status if $status =~ /\A4/;
            } else {
                push @not_error, $status;
            }
        }
        ok(@err4 > 0, "$id: a 4xx response with the Error schema");
        is("@not_error", '', "$id: every 4xx/5xx body is the Error schema");

        # {id} in the path: a required path parameter
        my @params = (@path_params, map { deref($_) } @{ $op->{parameters} // [] });
        for my $p ($path =~ /\{(\w+)\}/g) {
            ok(scalar(grep { ref $_ eq 'HASH' && ($_->{in} // '') eq 'path'
                    && ($_->{name} // '') eq $p && $_->{required} } @params),
                "$id: {$p} is a required path parameter");
        }
        for my $p (grep { ref $_ eq 'HASH' && ($_->{in} // '') eq 'path' } @params) {
            like($path, qr/\{\Q$p->{name}\E\}/,
                "$id: path parameter $p->{name} is in the path");
        }

        # security: declared schemes only; [] (public) or absent (global)
        my $sec = exists $op->{security} ? $op->{security}
                                         : $spec->{security} // [];
        my @unknown = grep { !$schemes->{$_} } map { keys %$_ } @$sec;
        is("@unknown", '', "$id: security names declared schemes");
    }
}

ok(scalar(keys %ops) > 0, scalar(keys %ops) . ' operations in the spec');

# --- the route table -------------------------------------------------------

my @rows = do {
    open my $fh, '-|', $^X, "$ROOT/t/routes", '--where'
        or die "t/routes: $!";
    my @l = <$fh>;
    close $fh;
    is($?, 0, 't/routes read every NGX_COMMERCE_ROUTE( row cleanly');
    chomp @l;
    @l;
};

if (!@rows) {
    fail('the route table has rows: no NGX_COMMERCE_ROUTE("METHOD",'
        . ' "/path", ..., "operationId") invocation was found in'
        . ' src/domain/**/*.c, so the spec cannot be checked against it'
        . ' (this passes once the declarative route table has landed)');
} else {
    my (%rows, @dup);
    for (@rows) {
        my ($method, $path, $id, $where) = split / /, $_, 4;
        push @dup, "$method $path ($where)" if $rows{"$method $path"};
        $rows{"$method $path"} = [$id, $where];
    }
    is("@dup", '', 'one row per method and path');

    my (@only_rows, @only_spec, @diff_id);
    for my $k (sort keys %rows) {
        my ($id, $where) = @{ $rows{$k} };
        if (!exists $ops{$k}) {
            push @only_rows, "$k $id ($where)";
        } elsif ($ops{$k} ne $id) {
            push @diff_id, "$k: row says $id ($where), spec says $ops{$k}";
        }
    }
    for my $k (sort keys %ops) {
        push @only_spec, "$k $ops{$k}" unless exists $rows{$k};
    }
    is_deeply(\@only_rows, [], 'every route-table row is an operation of'
        . ' conf/openapi.json')
        or do { diag("row without an operation: $_") for @only_rows };
    is_deeply(\@only_spec, [], 'every operation of conf/openapi.json is a'
        . ' route-table row')
        or do { diag("operation without a row: $_") for @only_spec };
    is_deeply(\@diff_id, [], 'rows and operations have the same'
        . ' operationId') or do { diag($_) for @diff_id };
}

# --- error codes ------------------------------------------------------------

# every code the module answers with (the registry of
# src/core/ngx_commerce_error.c, which maps the SQL functions' MESSAGEs and
# the module's own codes to a status) is a value of ErrorCode
{
    my $reg = do {
        my $f = "$ROOT/src/core/ngx_commerce_error.c";
        open my $fh, '<', $f or die "$f: $!";
        local $/;
        <$fh>;
    };
    my @codes = $reg =~ /^\s*\{\s*"([A-Z][A-Z0-9_]+)",/mg;
    ok(@codes >= 20, scalar(@codes) . ' codes in the error registry');
    my %enum = map { $_ => 1 }
        @{ $spec->{components}{schemas}{ErrorCode}{enum} // [] };
    is_deeply([ grep { !$enum{$_} } @codes ], [],
        'each of them is a value of ErrorCode');
}

done_testing;
