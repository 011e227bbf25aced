#!/usr/bin/perl
# The SQL layout (sql/README.md): versioned migrations sql/NNN_*.sql hold
# the tables, the files of sql/functions/ hold the current text of each
# function exactly once, and sql/migrate applies a function file again when
# its content changed (all changed files in one transaction).  A database
# made by the old layout (every function in the numbered migrations, up to
# commit e10690c) upgrades in place to exactly the functions and schema of
# a fresh one.  No nginx here: Postgres and sql/ only.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(sha256_hex);
use File::Find qw(find);
use JSON::PP;
use CommerceTest;

# The last commit of the old layout (001..008 with the functions in them).
my $OLD_LAYOUT = 'e10690c286eb0dc954671d9b949eba7eeab5e2e8';

my $t = CommerceTest->new(no_module => 1);
$t->start_pg(no_migrate => 1);

my $ROOT = $t->root;
my $PGBIN = $CommerceTest::PGBIN;

sub conninfo {
    my ($db) = @_;
    return "host=127.0.0.1 port=" . $t->pg_port . " dbname=$db user=postgres";
}

sub createdb {
    my ($db) = @_;
    my ($rc, $out) = $t->run([ "$PGBIN/createdb", '-h', '127.0.0.1',
        '-p', $t->pg_port, '-U', 'postgres', $db ]);
    die "createdb $db: $out" if $rc != 0;
}

# migrate($sql_dir, $db): (exit code, output) of $sql_dir/migrate
sub migrate {
    my ($dir, $db) = @_;
    return $t->run([ "$dir/migrate", conninfo($db) ], timeout => 120);
}

# q_db($db, $sql): the rows (psql -XAt), or the output chomped in scalar
# context; dies on an error.
sub q_db {
    my ($db, $sql) = @_;
    my ($rc, $out) = $t->run([ 'psql', '-X', '-A', '-t', '-q',
        '-v', 'ON_ERROR_STOP=1', '-f', '-', conninfo($db) ], stdin => $sql);
    die "psql $db failed ($rc): $out\nSQL: $sql" if $rc != 0;
    chomp $out;
    return wantarray ? split(/\n/, $out) : $out;
}

# { "name(argtypes)" => pg_get_functiondef } of every function in public
sub functions {
    my ($db) = @_;
    my $rows = q_db($db, <<'EOF');
SELECT string_agg(p.oid::regprocedure::text || E'\x1f' || pg_get_functiondef(p.oid),
                  E'\x1e' ORDER BY p.oid::regprocedure::text)
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'public'
EOF
    return { map { split /\x1f/, $_, 2 } split /\x1e/, $rows };
}

# the schema as pg_dump prints it, without the migration bookkeeping, the
# comments and the per-run \restrict keys
sub schema {
    my ($db) = @_;
    my ($rc, $out) = $t->run([ "$PGBIN/pg_dump", '--schema-only',
        '-T', 'schema_migrations', '-T', 'schema_repeatables',
        conninfo($db) ], timeout => 120);
    die "pg_dump $db failed: $out" if $rc != 0;
    return join '', grep { !/^(--|\\restrict|\\unrestrict)/ }
        split /^/, $out;
}

# { file name => applied_at } of schema_repeatables
sub repeatables {
    my ($db) = @_;
    return { map { split /\|/ } q_db($db,
        'SELECT name, applied_at FROM schema_repeatables') };
}

# how many orders, payments and audit rows (kept by an upgrade)
sub row_counts {
    my ($db) = @_;
    return scalar q_db($db, 'SELECT (SELECT count(*) FROM orders),'
        . ' (SELECT count(*) FROM payments), (SELECT count(*) FROM audit_log)');
}

sub show_diff {
    my ($name, $a, $b) = @_;
    my $fa = $t->write_file("$name.a", $a);
    my $fb = $t->write_file("$name.b", $b);
    my (undef, $out) = $t->run([ 'diff', '-u', $fa, $fb ]);
    diag($out);
}

sub applied_lines { grep { /^migrate: applied / } split /\n/, $_[0] }

sub read_text {
    my ($path) = @_;
    open my $fh, '<', $path or die "$path: $!";
    local $/;
    return scalar <$fh>;
}

sub write_text {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh;
}

my @versioned = map { s{.*/}{}r } sort glob("$ROOT/sql/[0-9][0-9][0-9]_*.sql");
my @function_files = map { s{.*/}{}r } sort glob("$ROOT/sql/functions/*.sql");
ok(@versioned >= 9, 'versioned migrations sql/NNN_*.sql: ' . scalar @versioned);
ok(@function_files >= 7, 'function files sql/functions/*.sql: '
    . join(' ', @function_files));

# --- the files themselves ---------------------------------------------------

my %defined;            # function name => [ files defining it ]
my %text;
for my $f ((map { "sql/$_" } @versioned),
           (map { "sql/functions/$_" } @function_files)) {
    $text{$f} = read_text("$ROOT/$f");
    while ($text{$f} =~ /^\s*CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+
                         (?:public\.)?(\w+)\s*\(/gmix) {
        push @{ $defined{lc $1} }, $f;
    }
}
my @twice = grep { @{ $defined{$_} } != 1 } sort keys %defined;
is_deeply(\@twice, [], 'each function is defined once across sql/')
    or diag(join "\n", map { "$_: @{ $defined{$_} }" } @twice);
ok(!$defined{cm_card_get_by_key}, 'cm_card_get_by_key is defined nowhere');

for my $f (map { "sql/functions/$_" } @function_files) {
    my $s = $text{$f};
    my @ddl = $s =~ /^\s*((?:CREATE|ALTER|DROP)\s+(?:UNIQUE\s+)?
                       (?:TABLE|INDEX|SEQUENCE|TYPE|DOMAIN|VIEW)\b[^\n]*)/gmix;
    is_deeply(\@ddl, [], "$f: no table DDL");
    my @plain = $s =~ /^\s*(CREATE\s+(?:FUNCTION|TRIGGER)\b[^\n]*)/gmi;
    is_deeply(\@plain, [], "$f: CREATE OR REPLACE only (idempotent)");
    my @tx = $s =~ /^\s*((?:BEGIN|START\s+TRANSACTION|COMMIT|ROLLBACK)\s*;)/gmi;
    is_deeply(\@tx, [], "$f: no transaction control");
}
for my $f (map { "sql/$_" } @versioned) {
    unlike($text{$f}, qr/^\s*CREATE\s+(?:OR\s+REPLACE\s+)?TRIGGER\b/mi,
        "$f: no trigger (bound in the function file of its domain)");
}

# the functions the module calls: the SQL string literals of src/
my %called;
find(sub {
    return unless /\.[ch]$/;
    my $c = read_text($_) =~ s/\\\n//gr;
    while ($c =~ /((?:"(?:[^"\\\n]|\\.)*"\s*)+)/g) {
        my $lit = join '', $1 =~ /"((?:[^"\\\n]|\\.)*)"/g;
        next unless $lit =~ /^\s*SELECT\b/;
        $called{$1} = 1 while $lit =~ /\b(cm_\w+)\s*\(/g;
    }
}, "$ROOT/src");
ok(keys %called >= 30, 'the statements of src/ call '
    . scalar(keys %called) . ' SQL functions');
my @undefined = grep {
    !grep { m{^sql/functions/} } @{ $defined{$_} // [] }
} sort keys %called;
is_deeply(\@undefined, [], 'each of them is defined in sql/functions/');

# --- a fresh database ------------------------------------------------------

createdb('fresh');
my ($rc, $out) = migrate("$ROOT/sql", 'fresh');
is($rc, 0, 'fresh database: migrate succeeds') or diag($out);
is_deeply([ applied_lines($out) ],
    [ (map { 'migrate: applied ' . s/\.sql$//r } @versioned),
      (map { "migrate: applied functions/$_" } @function_files) ],
    '... applies every migration, then every function file, in order')
    or diag($out);
q_db('fresh', read_text("$ROOT/sql/demo.sql"));

is_deeply({ map { split /\|/ } q_db('fresh',
        'SELECT name, sha256 FROM schema_repeatables') },
    { map { $_ => sha256_hex(read_text("$ROOT/sql/functions/$_")) }
        @function_files },
    'schema_repeatables holds the sha256 of each function file');

my $fresh_fn = functions('fresh');
my @missing = grep {
    my $n = $_;
    !grep { /^\Q$n\E\(/ } keys %$fresh_fn
} sort keys %called;
is_deeply(\@missing, [], 'every function the module calls exists');
ok(!grep({ /^cm_card_get_by_key\(/ } keys %$fresh_fn),
    'cm_card_get_by_key does not exist');
is(scalar(grep { /^cm_/ } keys %$fresh_fn),
    scalar(grep { /^cm_/ } keys %defined),
    'one function per definition in sql/ (no overloads)');

# A function of a versioned migration is there because a constraint needs
# it (and must be changed by a migration that re-checks that constraint).
for my $name (sort grep { $defined{$_}[0] !~ m{/functions/} } keys %defined) {
    is(scalar q_db('fresh', <<"EOF"), 't',
SELECT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_constraint c ON c.oid = d.objid
                WHERE d.classid = 'pg_constraint'::regclass
                  AND d.refobjid = '$name'::regproc)
EOF
        "$name ($defined{$name}[0]) is used by a constraint");
}

my $at = repeatables('fresh');
($rc, $out) = migrate("$ROOT/sql", 'fresh');
is($rc, 0, 'migrate again succeeds') or diag($out);
is_deeply([ applied_lines($out) ], [], '... and applies nothing') or diag($out);
like($out, qr/^migrate: 0 migration\(s\) and 0 function file\(s\) applied/m,
    '... and says so');
is_deeply(repeatables('fresh'), $at, '... no function file re-recorded');

# --- a database of the old layout, upgraded in place ------------------------

SKIP: {
    my $old = $t->dir . '/old';
    mkdir $old;
    my ($grc, $gout) = $t->run([ 'sh', '-c',
        'git -C "$1" archive "$2" sql | tar -x -C "$3"', 'sh', $ROOT,
        $OLD_LAYOUT, $old ]);
    skip("no git history with $OLD_LAYOUT here: $gout", 1) if $grc != 0;

    createdb('old');
    ($rc, $out) = migrate("$old/sql", 'old');
    is($rc, 0, 'old layout: its migrate builds a database (001..008)')
        or diag($out);
    q_db('old', read_text("$ROOT/sql/demo.sql"));

    # some life in it: orders paid and pending, a card payment accepted
    # and settled, an account signed up and withdrawn
    q_db('old', <<'EOF');
SELECT cm_order_create(1, '{1,2}', '{1,3}', 'BALANCE');
SELECT cm_order_create(2, '{3}', '{2}', NULL);
SELECT cm_card_accepted((cm_order_create_card(3, '{4}', '{1}', 'pg-a',
                         'VISA', '4242')::json->>'paymentId')::bigint, 'tx-1');
SELECT cm_card_settle(p.id, 'tx-1', 'SUCCESS', NULL)
  FROM payments p WHERE p.transaction_key = 'tx-1';
SELECT cm_signup(cm_user_next_id(), repeat('a', 64),
                 'v1.1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA', NULL,
                 'v1.1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA',
                 '$pbkdf2$x', '127.0.0.1');
SELECT cm_user_withdraw(id, '127.0.0.1')
  FROM users WHERE email_idx = repeat('a', 64);
EOF
    my $rows = row_counts('old');
    my $before = functions('old');

    ($rc, $out) = migrate("$ROOT/sql", 'old');
    is($rc, 0, 'the new migrate upgrades it') or diag($out);
    is_deeply([ applied_lines($out) ],
        [ (map { 'migrate: applied ' . s/\.sql$//r }
              grep { !/^00[1-8]_/ } @versioned),
          (map { "migrate: applied functions/$_" } @function_files) ],
        '... applying the migrations after 008, then every function file')
        or diag($out);
    is(row_counts('old'), $rows,
        "... its rows kept (orders|payments|audit rows: $rows)");
    # 011_product_sales fills paid_at and the best-seller sales of the
    # orders already PAID (the trigger keeps them from then on)
    is(scalar q_db('old', <<'EOF'), '2|0|5|5',
SELECT (SELECT count(*) FROM orders WHERE status = 'PAID')
       || '|' || (SELECT count(*) FROM orders
                   WHERE (status = 'PAID') <> (paid_at IS NOT NULL)
                      OR paid_at <> updated_at)
       || '|' || (SELECT sum(quantity) FROM product_sales_daily)
       || '|' || (SELECT sum(i.quantity) FROM orders o
                    JOIN order_items i ON i.order_id = o.id
                   WHERE o.status = 'PAID'
                     AND (o.paid_at AT TIME ZONE 'Asia/Seoul')::date
                         = (SELECT min(day) FROM product_sales_daily))
EOF
        '... its 2 PAID orders get paid_at (their updated_at) and their 5'
        . ' units in product_sales_daily');

    my $after = functions('old');
    my @removed = sort grep { !exists $after->{$_} } keys %$before;
    my @added = sort grep { !exists $before->{$_} } keys %$after;
    my @changed = sort grep { exists $after->{$_}
        && $after->{$_} ne $before->{$_} } keys %$before;
    # the order creations took a coupon argument, then the variants (a new
    # signature each time: the old one is dropped, a shorter call still
    # finds the new one)
    my %resigned = (
        cm_order_create => 'cm_order_create(bigint,bigint[],integer[],text)',
        cm_order_create_card =>
            'cm_order_create_card(bigint,bigint[],integer[],text,text,text)');
    # the catalogue (014_catalogue.sql) replaced the product and item
    # documents' helpers
    my @replaced = ('cm__item_json(bigint,text,integer,bigint,bigint)',
                    'cm__product_json(bigint,text,bigint,integer)');
    is_deeply(\@removed, [ sort('cm__payment_json(bigint,text,text,bigint)',
                                'cm_card_get_by_key(text,text)', values %resigned,
                                @replaced) ],
        'upgrade: the unused cm_card_get_by_key, the 4-argument'
        . ' cm__payment_json, the coupon-less order creations and the'
        . ' documents\' helpers of before variants are dropped');
    # added: exactly the functions sql/ defines and the old layout did not
    # (the domains that came after it: 70_coupon.sql, 80_sales.sql)
    my %old_defined;
    for my $f (glob("$old/sql/*.sql"), glob("$old/sql/functions/*.sql")) {
        my $text = read_text($f);
        $old_defined{lc $1} = 1 while $text =~
            /^\s*CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(?:public\.)?(\w+)\s*\(/gmi;
    }
    my @new = sort grep { !$old_defined{$_} } keys %defined;
    is_deeply([ sort map { s/\(.*//sr } @added ],
        [ sort @new, keys %resigned ],
        'upgrade: the functions added are those the old layout did not define: '
        . join(' ', @new) . ', and the order creations with a coupon');
    # besides: the trigger of the product cache, with the catalogue, and
    # the order item of variants, with the order document
    # and the order document's "payments" (mixed payments, 024); the
    # order's creation cut to its statements (issue 14: cm__order_place,
    # the document with its payments given, cm__order_doc_of)
    my %in_old_domain = (cm__product_changed => 1, cm__order_item_json => 1,
                         cm__order_payments_json => 1, cm__order_place => 1,
                         cm__order_doc_of => 1, cm__card_payment_new => 1,
                         cm__order_resolve => 1, cm__card_columns => 1);
    ok(!grep({ m{^sql/functions/(?:0|1[0-4]|[2-6])} } map { @{ $defined{$_} } }
            grep { !$in_old_domain{$_} } @new),
        '... all of them in function files of the domains that came later'
        . ' (15_catalogue.sql, after 60_account.sql) but the product cache'
        . ' trigger (10_catalog.sql), the order item, the order\'s'
        . ' payments and the order\'s placing (30_order.sql), a card'
        . ' payment\'s row (40_payment.sql)');
    for my $f (keys %resigned) {
        my ($sig) = grep { /^\Q$f\E\(/ } @added;
        like($sig // '', qr/^\Q$f\E\(.*,bigint,bigint\[\]\)$/,
            "... $f takes the coupon, then the variants, last");
    }
    # coupons on orders: the paths that pay, cancel or fail an order; the
    # paths that pay also set paid_at (best sellers); the outbox: signup
    # and withdrawal write their events (95_outbox.sql); variants: the
    # stock moves by variant, the documents show them
    # EASY_PAY and TRANSFER (026): the card functions find any gateway
    # payment, start and show the three kinds, the reconciler polls a
    # transfer waiting for its deposit without timing it out; mixed
    # payments (78_mixpay.sql): paying an existing order locks it through
    # cm__order_payable, cm_card_begin too
    my @gateway_methods = ('cm__card_check_args(text,text,text)',
        'cm_card_begin(bigint,bigint,text,text,text)',
        'cm__card_start(bigint,bigint,text,text,text)',
        'cm__payment_json(bigint,text,text,bigint,text)',
        'cm_card_abort(bigint,text)', 'cm_card_accepted(bigint,text,text)',
        'cm_card_cancelled(bigint,boolean,text)', 'cm_card_gateway(bigint,text)',
        'cm_card_due(integer,integer,integer)');
    my %outbox = map { $_ => 1 } 'cm_signup(bigint,text,text,text,text,text,text)',
        'cm_user_withdraw(bigint,text)';
    is_deeply(\@changed,
        [ sort('cm__order_release_stock(bigint)',
               'cm_card_settle(bigint,text,text,text)', @gateway_methods,
               # mixed payments: "payments" in the document
               'cm__order_doc(bigint,bigint,text,text,bigint,bigint,bigint,'
               . 'text,timestamp with time zone)',
               'cm_order_json(bigint,bigint)', 'cm_order_pay(bigint,bigint,text)',
               'cm_orders_expire(integer,integer)', 'cm_product_get(bigint)',
               'cm_product_list(integer,integer)', keys %outbox) ],
        'upgrade: the functions changed are those that pay, expire or fail an'
        . ' order, those that write user events, those that move stock or'
        . ' show products and items by variant, the gateway payments\''
        . ' (EASY_PAY, TRANSFER) and the order document') or diag(@changed);
    for my $f (grep { /^cm_(?:card_settle|order_pay|orders_expire)\(/ }
               @changed) {
        like($after->{$f}, qr/cm__coupon_(?:use|release)\(/,
            "... $f moves the order's coupon");
    }

    is_deeply($after, $fresh_fn,
        'upgraded and fresh databases have the same functions, same text');
    my ($s_old, $s_fresh) = (schema('old'), schema('fresh'));
    ok($s_old eq $s_fresh,
        'upgraded and fresh databases have the same schema (pg_dump)')
        or show_diff('schema', $s_old, $s_fresh);

    # the changed call: a BALANCE payment in the order document
    my $order = JSON::PP->new->decode(scalar q_db('old',
        q{SELECT cm_order_create(5, '{7}', '{1}', 'BALANCE')}));
    is_deeply([ sort keys %{ $order->{payment} } ],
        [ qw(amount id method status) ],
        'upgraded: a BALANCE payment is {"id","method","status","amount"}');
    is($order->{payment}{method}, 'BALANCE', '... method BALANCE');

    ($rc, $out) = migrate("$ROOT/sql", 'old');
    is_deeply([ applied_lines($out) ], [],
        'upgraded: migrate again applies nothing') or diag($out);
}

# --- a changed function file is applied again, alone -------------------------

my $edit = $t->dir . '/sql-edit';
($rc, $out) = $t->run([ 'cp', '-a', "$ROOT/sql", $edit ]);
is($rc, 0, 'a copy of sql/') or diag($out);

my $catalog = "$edit/functions/10_catalog.sql";
my $orig = read_text($catalog);
my $edited = $orig
    =~ s/'product %s not found'/'product %s is not in the catalogue'/r;
isnt($edited, $orig, 'cm_product_get edited in the copy');
write_text($catalog, $edited);

my $product_get = q{SELECT pg_get_functiondef('cm_product_get'::regproc)};
my $before_edit = repeatables('fresh');
($rc, $out) = migrate($edit, 'fresh');
is($rc, 0, 'migrate with the edited file succeeds') or diag($out);
is_deeply([ applied_lines($out) ],
    [ 'migrate: applied functions/10_catalog.sql' ],
    '... and applies that file only') or diag($out);
like(scalar q_db('fresh', $product_get), qr/is not in the catalogue/,
    '... cm_product_get has its new text');
my $after_edit = repeatables('fresh');
is_deeply([ sort grep { $before_edit->{$_} ne $after_edit->{$_} }
        keys %$before_edit ], [ '10_catalog.sql' ],
    '... only its row in schema_repeatables is new');
is(scalar q_db('fresh', q{SELECT sha256 FROM schema_repeatables
                           WHERE name = '10_catalog.sql'}),
    sha256_hex($edited), '... with the new checksum');
($rc, $out) = migrate($edit, 'fresh');
is_deeply([ applied_lines($out) ], [], '... and a second run applies nothing');

# a failing file rolls back every function file of the run
write_text($catalog, $orig);
my $account = "$edit/functions/60_account.sql";
write_text($account,
    read_text($account) . "\nSELECT cm_no_such_function();\n");
($rc, $out) = migrate($edit, 'fresh');
isnt($rc, 0, 'a function file that fails: migrate fails');
like($out, qr/function files FAILED \(all rolled back\)/, '... and says so');
like(scalar q_db('fresh', $product_get), qr/is not in the catalogue/,
    '... 10_catalog.sql, changed back meanwhile, was rolled back too');
is_deeply(repeatables('fresh'), $after_edit,
    '... schema_repeatables unchanged');

# back to the real sql/: the changed file is applied again
($rc, $out) = migrate("$ROOT/sql", 'fresh');
is_deeply([ applied_lines($out) ],
    [ 'migrate: applied functions/10_catalog.sql' ],
    'the real sql/ again: 10_catalog.sql applied again') or diag($out);
is_deeply(functions('fresh'), $fresh_fn, '... every function as before');

# --- concurrent runs on an empty database ----------------------------------

createdb('race');
my $prefix = $t->dir . '/race';
($rc, $out) = $t->run([ 'bash', '-c', <<'EOF', 'race', "$ROOT/sql/migrate",
pids=()
for i in 1 2 3 4; do
    "$1" "$2" >"$3.$i" 2>&1 &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc
EOF
    conninfo('race'), $prefix ], timeout => 180);
is($rc, 0, '4 migrate runs at once on an empty database all succeed')
    or diag($out);
my @all = map { applied_lines(read_text("$prefix.$_")) } 1 .. 4;
is_deeply([ sort @all ],
    [ sort((map { 'migrate: applied ' . s/\.sql$//r } @versioned),
           (map { "migrate: applied functions/$_" } @function_files)) ],
    '... and applied each file exactly once between them')
    or diag(join "\n", map { read_text("$prefix.$_") } 1 .. 4);
is_deeply(functions('race'), $fresh_fn, '... to the same functions');

$t->done;
