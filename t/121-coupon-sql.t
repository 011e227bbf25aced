#!/usr/bin/perl
# Coupons, the Postgres side (sql/010_coupons.sql, sql/functions/70_coupon.sql):
# campaigns created and refused (by the function, and by each CHECK when
# the function is bypassed), get, list, issue, a user's coupons; then exact
# outcomes of concurrent issuing with pgbench: 100 coupons for 1,000
# distinct users, random users, one user against a limit of 1 and of 2,
# and the raw function from 50 sessions released at once.  No nginx here:
# Postgres and sql/ only.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use utf8;
use Test::More;
use JSON::PP;
use CommerceTest;

my $t = CommerceTest->new(no_module => 1);
$t->start_pg;
$t->load_demo;

my $PGBIN = $CommerceTest::PGBIN;
my $ROOT = $t->root;
my $TS = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

# dbq($sql): the rows / scalar of psql (dies on error)
sub dbq { $t->psql(@_) }
sub qj { $t->psql_json(@_) }

# sql_error($sql): (sqlstate, message, detail) of the error the statement
# raises, or () when it succeeds
sub sql_error {
    my ($sql) = @_;
    my ($rc, $out) = $t->run([ 'psql', '-X', '-A', '-t', '-q',
        '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', '-f', '-',
        $t->pg_conninfo ], stdin => "\\set VERBOSITY verbose\n$sql");
    return () if $rc == 0;
    my ($state, $msg) = $out =~ /ERROR:\s+([0-9A-Z]{5}):\s+(.*)/;
    my ($detail) = $out =~ /DETAIL:\s+(.*)/;
    return ($state // "?($out)", $msg // '', $detail // '');
}

# is_sql_error($sql, $state, $message_re, $name)
sub is_sql_error {
    my ($sql, $state, $re, $name) = @_;
    my ($s, $m, $d) = sql_error($sql);
    my $ok = defined $s && $s eq $state && ($m =~ $re || $d =~ $re);
    ok($ok, $name) or diag("got: " . ($s // 'success') . " / $m / $d; want $state / $re");
}

# a campaign through the function; %o overrides the arguments
my %DEF = (actor => 1, name => q{'Welcome'}, type => q{'FIXED'}, value => 1000,
           max => 'NULL', min => 'NULL', total => 100, per_user => 1,
           starts => q{now() - interval '1 hour'}, ends => q{now() + interval '1 day'},
           days => 7);
sub create_sql {
    my %a = (%DEF, @_);
    return "SELECT cm_coupon_create($a{actor}, $a{name}, $a{type}, $a{value}, $a{max},"
        . " $a{min}, $a{total}, $a{per_user}, $a{starts}, $a{ends}, $a{days})";
}
sub create { qj(create_sql(@_)) }

# ---------------------------------------------------------------------------
# create, get

dbq(q{UPDATE users SET role = 'MANAGER' WHERE id = 1});
my $c1 = create(name => q{'Welcome "10%" 쿠폰'}, type => q{'RATE'}, value => 10,
                max => 5000, min => 20000, total => 100, per_user => 2,
                starts => q{'2026-01-01T00:00:00.123Z'}, ends => q{'2099-01-01T00:00:00Z'},
                days => 30);
my $created_at = delete $c1->{createdAt};
like($created_at, $TS, 'create: createdAt is RFC 3339 UTC with milliseconds');
is_deeply($c1, { id => $c1->{id}, name => 'Welcome "10%" 쿠폰', discountType => 'RATE',
    discountValue => 10, maxDiscount => 5000, minOrderAmount => 20000,
    totalQuantity => 100, remaining => 100, perUserLimit => 2,
    issueStartsAt => '2026-01-01T00:00:00.123Z', issueEndsAt => '2099-01-01T00:00:00.000Z',
    validDays => 30 }, 'create: the campaign document');
is(scalar dbq("SELECT string_agg(k, ',') FROM json_object_keys(cm_coupon_get($c1->{id})::json) k"),
    'id,name,discountType,discountValue,maxDiscount,minOrderAmount,totalQuantity,'
    . 'remaining,perUserLimit,issueStartsAt,issueEndsAt,validDays,createdAt',
    '... keys in the documented order');
is(scalar dbq("SELECT created_by FROM coupon_campaigns WHERE id = $c1->{id}"), 1,
    '... created_by is the actor');
my $fixed = create(min => 'NULL');
is($fixed->{maxDiscount}, undef, 'a FIXED campaign: maxDiscount null');
is($fixed->{minOrderAmount}, 0, '... minOrderAmount defaults to 0');

my $g = qj("SELECT cm_coupon_get($c1->{id})");
is_deeply($g, { %$c1, createdAt => $created_at }, 'get: the same document');
is_sql_error('SELECT cm_coupon_get(999999)', 'CM001', qr/^COUPON_NOT_FOUND$/,
    'get: unknown id is COUPON_NOT_FOUND');
is_sql_error('SELECT cm_coupon_remaining(999999)', 'CM001', qr/^COUPON_NOT_FOUND$/,
    'remaining: unknown id is COUPON_NOT_FOUND');
is(scalar dbq("SELECT cm_coupon_remaining($c1->{id})"), 100, 'remaining: 100');

# every bad argument: INVALID_REQUEST (or USER_NOT_FOUND), nothing written
my $before = $t->db_state;
my @bad = (
    [ { name => 'NULL' }, qr/name/, 'no name' ],
    [ { name => q{''} }, qr/name/, 'empty name' ],
    [ { name => q{'   '} }, qr/name/, 'blank name' ],
    [ { name => q{repeat('x', 101)} }, qr/name/, 'name of 101 characters' ],
    [ { name => q{E'a\nb'} }, qr/name/, 'name with a control character' ],
    [ { type => q{'PERCENT'} }, qr/discountType/, 'unknown type' ],
    [ { type => 'NULL' }, qr/discountType/, 'no type' ],
    [ { value => 0 }, qr/discountValue/, 'value 0' ],
    [ { value => -5 }, qr/discountValue/, 'negative value' ],
    [ { value => 'NULL' }, qr/discountValue/, 'no value' ],
    [ { value => 1000000000001 }, qr/discountValue/, 'value over 10^12' ],
    [ { type => q{'RATE'}, value => 101 }, qr/percentage/, 'RATE 101 %' ],
    [ { type => q{'RATE'}, value => 10, max => 0 }, qr/maxDiscount/, 'maxDiscount 0' ],
    [ { max => 500 }, qr/RATE coupons only/, 'maxDiscount on a FIXED coupon' ],
    [ { min => -1 }, qr/minOrderAmount/, 'negative minOrderAmount' ],
    [ { total => 0 }, qr/totalQuantity/, 'total 0' ],
    [ { total => 100000001 }, qr/totalQuantity/, 'total over 10^8' ],
    [ { total => 'NULL' }, qr/totalQuantity/, 'no total' ],
    [ { per_user => 0 }, qr/perUserLimit/, 'per-user limit 0' ],
    [ { per_user => 101 }, qr/perUserLimit/, 'per-user limit 101' ],
    [ { total => 3, per_user => 4 }, qr/perUserLimit must not exceed/, 'per-user limit over total' ],
    [ { starts => 'NULL' }, qr/issueStartsAt/, 'no start' ],
    [ { ends => q{now() - interval '2 hours'} }, qr/after issueStartsAt/, 'window ends before it starts' ],
    [ { ends => q{now() - interval '1 hour'} }, qr/after issueStartsAt/, 'empty window' ],
    [ { starts => q{now() - interval '2 days'}, ends => q{now() - interval '1 day'} },
      qr/in the future/, 'window already over' ],
    [ { days => 0 }, qr/validDays/, 'validDays 0' ],
    [ { days => 3651 }, qr/validDays/, 'validDays 3651' ],
);
for my $b (@bad) {
    my ($args, $re, $name) = @$b;
    is_sql_error(create_sql(%$args), 'CM001', qr/^INVALID_REQUEST$/, "create refuses: $name");
    my (undef, undef, $detail) = sql_error(create_sql(%$args));
    like($detail, $re, '... saying why');
}
is_sql_error(create_sql(actor => 999999), 'CM001', qr/^USER_NOT_FOUND$/,
    'create: unknown actor is USER_NOT_FOUND');
is_deeply($t->db_state, $before, 'refused creations wrote nothing');

# the CHECKs on their own (the functions bypassed)
my $ins = sub {
    my (%a) = (name => q{'x'}, type => q{'FIXED'}, value => 100, max => 'NULL', min => 0,
               total => 10, issued => 0, per_user => 1, starts => 'now()',
               ends => q{now() + interval '1 day'}, days => 1, @_);
    return "INSERT INTO coupon_campaigns (name, discount_type, discount_value, max_discount,"
        . " min_order_amount, total_quantity, issued_quantity, per_user_limit, issue_starts_at,"
        . " issue_ends_at, valid_days, created_by) VALUES ($a{name}, $a{type}, $a{value},"
        . " $a{max}, $a{min}, $a{total}, $a{issued}, $a{per_user}, $a{starts}, $a{ends},"
        . " $a{days}, 1)";
};
my @checks = (
    [ { name => q{' '} }, 'coupon_campaigns_name_check' ],
    [ { type => q{'BOGO'} }, 'coupon_campaigns_discount_type_check' ],
    [ { value => 0 }, 'coupon_campaigns_discount_value_check' ],
    [ { type => q{'RATE'}, value => 101 }, 'coupon_campaigns_rate_check' ],
    [ { type => q{'RATE'}, value => 10, max => -1 }, 'coupon_campaigns_max_discount_check' ],
    [ { max => 100 }, 'coupon_campaigns_max_discount_rate_check' ],
    [ { min => -1 }, 'coupon_campaigns_min_order_amount_check' ],
    [ { total => 100000001 }, 'coupon_campaigns_total_quantity_check' ],
    [ { issued => 11 }, 'coupon_campaigns_issued_quantity_check' ],
    [ { issued => -1 }, 'coupon_campaigns_issued_quantity_check' ],
    [ { per_user => 11 }, 'coupon_campaigns_per_user_limit_check' ],
    [ { ends => 'now()' }, 'coupon_campaigns_window_check' ],
    [ { days => 0 }, 'coupon_campaigns_valid_days_check' ],
);
for my $c (@checks) {
    my ($args, $constraint) = @$c;
    is_sql_error($ins->(%$args), '23514', qr/"\Q$constraint\E"/, "CHECK $constraint");
}
is_sql_error("UPDATE coupon_campaigns SET issued_quantity = total_quantity + 1 WHERE id = $c1->{id}",
    '23514', qr/coupon_campaigns_issued_quantity_check/,
    'an UPDATE past the total is refused by the CHECK');

# ---------------------------------------------------------------------------
# issue

my $u = qj("SELECT cm_coupon_issue(5, $c1->{id})");
like($u->{issuedAt}, $TS, 'issue: issuedAt RFC 3339');
like($u->{expiresAt}, $TS, '... expiresAt RFC 3339');
is(scalar dbq(qq{SELECT ('$u->{expiresAt}'::timestamptz - '$u->{issuedAt}'::timestamptz)::text}),
    '30 days', '... valid for validDays');
is_deeply({ %$u, issuedAt => 'T', expiresAt => 'T' },
    { id => $u->{id}, couponId => $c1->{id}, name => 'Welcome "10%" 쿠폰', discountType => 'RATE',
      discountValue => 10, status => 'AVAILABLE', issuedAt => 'T', expiresAt => 'T' },
    '... the user coupon document');
my $ukeys = dbq("SELECT string_agg(k, ',') FROM json_object_keys(cm_coupon_issue(5, $c1->{id})::json) k");
is($ukeys, 'id,couponId,name,discountType,discountValue,status,issuedAt,expiresAt',
    '... keys in the documented order (second coupon, limit 2)');
is(scalar dbq("SELECT string_agg(seq || ':' || issue_no, ',' ORDER BY id) FROM user_coupons"
    . " WHERE campaign_id = $c1->{id}"), '1:1,2:2', '... seq and issue_no 1, 2');

$before = $t->db_state;
is_sql_error("SELECT cm_coupon_issue(5, $c1->{id})", 'CM001', qr/^COUPON_LIMIT_REACHED$/,
    'a third coupon on a limit of 2: COUPON_LIMIT_REACHED');
is_sql_error("SELECT cm_coupon_issue(5, 999999)", 'CM001', qr/^COUPON_NOT_FOUND$/,
    'unknown campaign: COUPON_NOT_FOUND');
is_sql_error("SELECT cm_coupon_issue(999999, $c1->{id})", 'CM001', qr/^USER_NOT_FOUND$/,
    'unknown user: USER_NOT_FOUND');
is_sql_error("SELECT cm_coupon_issue(NULL, $c1->{id})", 'CM001', qr/^INVALID_REQUEST$/,
    'no user: INVALID_REQUEST');
my $future = create(starts => q{now() + interval '1 day'}, ends => q{now() + interval '2 days'});
is_sql_error("SELECT cm_coupon_issue(5, $future->{id})", 'CM001', qr/^COUPON_NOT_ISSUABLE$/,
    'before the window: COUPON_NOT_ISSUABLE');
my $one = create(total => 1);
$before = $t->db_state;
is(qj("SELECT cm_coupon_issue(6, $one->{id})")->{status}, 'AVAILABLE', 'the only coupon of a campaign');
is_sql_error("SELECT cm_coupon_issue(7, $one->{id})", 'CM001', qr/^COUPON_SOLD_OUT$/,
    '... the next user: COUPON_SOLD_OUT');
is_sql_error("SELECT cm_coupon_issue(6, $one->{id})", 'CM001', qr/^COUPON_LIMIT_REACHED$/,
    '... its holder again: COUPON_LIMIT_REACHED (before sold out)');
my $ended = create();
dbq("UPDATE coupon_campaigns SET issue_starts_at = now() - interval '2 days',"
  . " issue_ends_at = now() - interval '1 day' WHERE id = $ended->{id}");
$before = $t->db_state;
is_sql_error("SELECT cm_coupon_issue(5, $ended->{id})", 'CM001', qr/^COUPON_NOT_ISSUABLE$/,
    'after the window: COUPON_NOT_ISSUABLE');
is_sql_error("SELECT cm_coupon_issue(5, $future->{id})", 'CM001', qr/^COUPON_NOT_ISSUABLE$/,
    'before the window again');
is_sql_error("SELECT cm_coupon_issue(7, $one->{id})", 'CM001', qr/^COUPON_SOLD_OUT$/, 'sold out again');
is_deeply($t->db_state, $before, 'refused issues wrote nothing (counter included)');

# the user_coupons constraints on their own
my $uc = sub {
    my (%a) = (campaign => $c1->{id}, user => 9, issue_no => 50, seq => 1, total => 100,
               per_user => 2, status => q{'AVAILABLE'}, reserved => 'NULL', used => 'NULL', @_);
    return "INSERT INTO user_coupons (campaign_id, user_id, issue_no, seq, total_quantity,"
        . " per_user_limit, status, reserved_by, expires_at, used_at) VALUES ($a{campaign},"
        . " $a{user}, $a{issue_no}, $a{seq}, $a{total}, $a{per_user}, $a{status}, $a{reserved},"
        . " now() + interval '1 day', $a{used})";
};
is_sql_error($uc->(issue_no => 101), '23514', qr/user_coupons_issue_no_check/,
    'a coupon numbered past the total: CHECK');
is_sql_error($uc->(issue_no => 0), '23514', qr/user_coupons_issue_no_check/, 'issue_no 0: CHECK');
is_sql_error($uc->(seq => 3), '23514', qr/user_coupons_seq_check/,
    "a user's third coupon on a limit of 2: CHECK");
is_sql_error($uc->(issue_no => 150, total => 1000), '23503', qr/user_coupons_campaign_fkey/,
    'a row claiming a larger total than its campaign: foreign key');
is_sql_error($uc->(seq => 3, per_user => 3), '23503', qr/user_coupons_campaign_fkey/,
    'a row claiming a larger per-user limit: foreign key');
is_sql_error($uc->(user => 5, seq => 1), '23505', qr/user_coupons_user_seq_key/,
    "the user's seq 1 again: unique");
is_sql_error($uc->(issue_no => 1), '23505', qr/user_coupons_issue_no_key/,
    "the campaign's issue_no 1 again: unique");
is_sql_error($uc->(status => q{'USED'}), '23514', qr/user_coupons_used_check/,
    'USED without used_at: CHECK');
is_sql_error($uc->(status => q{'USED'}, used => 'now()'), '23514', qr/user_coupons_used_order_check/,
    'USED without an order: CHECK');
is_sql_error("UPDATE coupon_campaigns SET total_quantity = 2000 WHERE id = $c1->{id}", '23503',
    qr/user_coupons_campaign_fkey/, "a campaign's total cannot change once it has issued");

# ---------------------------------------------------------------------------
# list

my $list = qj('SELECT cm_coupon_list()');
is_deeply([ map { $_->{id} } @{ $list->{items} } ], [ $c1->{id}, $fixed->{id} ],
    'list: the issuable campaigns only (not sold out, not before or after the window), by id');
is($list->{items}[0]{remaining}, 98, '... with remaining');
is_deeply($list->{items}[0], qj("SELECT cm_coupon_get($c1->{id})"), '... the campaign document');

# ---------------------------------------------------------------------------
# a user's coupons

my $mine = qj('SELECT cm_user_coupons(5)');
is_deeply([ map { $_->{couponId} } @{ $mine->{items} } ], [ $c1->{id}, $c1->{id} ],
    "user coupons: user 5's two");
ok($mine->{items}[0]{id} > $mine->{items}[1]{id}, '... newest first');
is_deeply(qj('SELECT cm_user_coupons(6)')->{items}[0]{couponId}, $one->{id}, "user 6's one");
is_deeply(qj('SELECT cm_user_coupons(8)'), { items => [] }, 'a user without coupons: []');
my $order = qj(q{SELECT cm_order_create(5, '{1}', '{1}', 'BALANCE')})->{id};
my ($first, $second) = map { $_->{id} } reverse @{ $mine->{items} };
dbq("UPDATE user_coupons SET status = 'USED', used_at = now(), reserved_by = $order WHERE id = $first");
dbq("UPDATE user_coupons SET issued_at = now() - interval '40 days',"
  . " expires_at = now() - interval '10 days' WHERE id = $second");
my %by = map { my $s = $_; $s => [ map { "$_->{id}:$_->{status}" }
        @{ qj("SELECT cm_user_coupons(5, '$s')")->{items} } ] } qw(AVAILABLE USED EXPIRED);
is_deeply(\%by, { AVAILABLE => [], USED => [ "$first:USED" ], EXPIRED => [ "$second:EXPIRED" ] },
    'by status: USED stored, EXPIRED computed from expires_at');
is_deeply([ map { $_->{status} } @{ qj('SELECT cm_user_coupons(5)')->{items} } ],
    [ 'EXPIRED', 'USED' ], '... and in the full list');
is(scalar dbq("SELECT status FROM user_coupons WHERE id = $second"), 'AVAILABLE',
    '... (the stored status stays AVAILABLE)');
is_deeply([ map { $_->{status} } @{ qj(q{SELECT cm_user_coupons(6, 'AVAILABLE')})->{items} } ],
    [ 'AVAILABLE' ], "AVAILABLE: user 6's");
is_sql_error(q{SELECT cm_user_coupons(5, 'NEW')}, 'CM001', qr/^INVALID_REQUEST$/,
    'an unknown status: INVALID_REQUEST');
is_sql_error('SELECT cm_user_coupons(999999)', 'CM001', qr/^USER_NOT_FOUND$/,
    'an unknown user: USER_NOT_FOUND');

# ---------------------------------------------------------------------------
# concurrency: pgbench, 16 clients on 2 threads, prepared statements.
# pgbench stops a client at its first error, so the calls go through a
# test-only wrapper that records each outcome (the function's MESSAGE, or
# the SQLSTATE of anything else) in t_outcome.  The wrapper's exception
# block is a subtransaction: the call's writes and locks are undone
# exactly as when the module's own transaction fails.

dbq(<<'SQL');
CREATE UNLOGGED TABLE t_outcome (run text NOT NULL, user_id bigint, code text NOT NULL);
CREATE SEQUENCE t_user_seq MAXVALUE 1000;
CREATE FUNCTION t_issue(p_run text, p_user bigint, p_campaign bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_code text := 'ISSUED';
BEGIN
    BEGIN
        PERFORM cm_coupon_issue(p_user, p_campaign);
    EXCEPTION WHEN OTHERS THEN
        v_code := CASE WHEN SQLSTATE = 'CM001' THEN SQLERRM
                       ELSE 'SQLSTATE ' || SQLSTATE || ' ' || SQLERRM END;
    END;
    INSERT INTO t_outcome VALUES (p_run, p_user, v_code);
END
$$;
SQL

sub pgbench {
    my ($script, $clients, $tx, %vars) = @_;
    my $file = $t->write_file("bench-" . int(rand(1e9)) . ".sql", $script);
    chmod 0644, $file;
    my ($rc, $out) = $t->run([ "$PGBIN/pgbench", '-n', '-M', 'prepared', '-c', $clients,
        '-j', 2, '-t', $tx, (map { ('-D', "$_=$vars{$_}") } sort keys %vars), '-f', $file,
        '-h', '127.0.0.1', '-p', $t->pg_port, '-U', 'postgres', 'commerce' ], timeout => 300);
    my ($done) = $out =~ /number of transactions actually processed: (\d+)/;
    my ($failed) = $out =~ /number of failed transactions: (\d+)/;
    my ($tps) = $out =~ /tps = ([\d.]+)/;
    is($rc, 0, "pgbench -c $clients -t $tx: exits 0") or diag($out);
    is($done, $clients * $tx, "... $done transactions") or diag($out);
    is($failed // 0, 0, '... none failed') or diag($out);
    note("pgbench: " . ($tps // '?') . " tps");
    return $out;
}

sub outcomes {
    my ($run) = @_;
    return { map { split /\|/ } dbq("SELECT code, count(*) FROM t_outcome WHERE run = '$run' GROUP BY code") };
}

# the campaign's truth: rows, distinct users, max per user, counter, issue_no 1..n
sub truth {
    my ($id) = @_;
    my ($rows, $users, $max, $issued, $nos) = split /\|/, scalar dbq(<<"SQL");
SELECT count(*), count(DISTINCT user_id),
       coalesce((SELECT max(n) FROM (SELECT count(*) AS n FROM user_coupons
                  WHERE campaign_id = $id GROUP BY user_id) x), 0),
       (SELECT issued_quantity FROM coupon_campaigns WHERE id = $id),
       count(*) FILTER (WHERE issue_no BETWEEN 1 AND (SELECT count(*) FROM user_coupons
                         WHERE campaign_id = $id))
  FROM user_coupons WHERE campaign_id = $id
SQL
    return { rows => $rows, users => $users, max_per_user => $max, issued => $issued,
             numbered => $nos };
}

# 1. 100 coupons, 1,000 distinct users at once (each user once: the
#    sequence hands out 1..1000; 20 clients x 50 = 1,000 calls)
my $burst = create(name => q{'burst'}, total => 100, per_user => 1);
pgbench("SELECT t_issue('distinct', nextval('t_user_seq'), :cid);\n", 20, 50, cid => $burst->{id});
is_deeply(outcomes('distinct'), { ISSUED => 100, COUPON_SOLD_OUT => 900 },
    '100 coupons, 1,000 distinct users: exactly 100 issued, 900 COUPON_SOLD_OUT');
is_deeply(truth($burst->{id}), { rows => 100, users => 100, max_per_user => 1, issued => 100,
    numbered => 100 }, '... 100 rows, 100 users, nobody twice, issued = 100, issue_no 1..100');
is(scalar dbq("SELECT cm_coupon_remaining($burst->{id})"), 0, '... remaining 0');
is(scalar dbq(q{SELECT count(DISTINCT user_id) FROM t_outcome WHERE run = 'distinct'}), 1000,
    '... 1,000 distinct callers');

# 2. 100 coupons, limit 1, random users 1..1000, 16 clients x 125 = 2,000 calls
#    (users repeat: COUPON_LIMIT_REACHED for a winner calling again)
my $random = create(name => q{'random'}, total => 100, per_user => 1);
pgbench("\\set uid random(1, 1000)\nSELECT t_issue('random', :uid, :cid);\n", 16, 125,
        cid => $random->{id});
my $o = outcomes('random');
is($o->{ISSUED}, 100, 'random users: exactly 100 issued');
is_deeply([ sort grep { $_ ne 'ISSUED' } keys %$o ],
    [ grep { $o->{$_} } qw(COUPON_LIMIT_REACHED COUPON_SOLD_OUT) ],
    '... every other call COUPON_SOLD_OUT or COUPON_LIMIT_REACHED, nothing else')
    or diag(explain($o));
my $sum = 0; $sum += $_ for values %$o;
is($sum, 2000, '... 2,000 outcomes: ' . join(', ', map { "$_ $o->{$_}" } sort keys %$o));
is_deeply(truth($random->{id}), { rows => 100, users => 100, max_per_user => 1, issued => 100,
    numbered => 100 }, '... 100 rows, nobody twice, issued = 100');
is(scalar dbq(q{SELECT count(*) FROM t_outcome o JOIN user_coupons uc ON uc.user_id = o.user_id
               AND uc.campaign_id = } . $random->{id} . q{ WHERE o.run = 'random'
               AND o.code = 'ISSUED'}), 100, '... the winners are the rows');

# 3. one user, 16 clients x 4 = 64 concurrent calls, limit 1 then limit 2
for my $limit (1, 2) {
    my $c = create(name => qq{'one user, limit $limit'}, total => 1000, per_user => $limit);
    pgbench("SELECT t_issue('one-$limit', 42, :cid);\n", 16, 4, cid => $c->{id});
    is_deeply(outcomes("one-$limit"), { ISSUED => $limit, COUPON_LIMIT_REACHED => 64 - $limit },
        "one user, 64 concurrent calls, limit $limit: exactly $limit issued,"
        . ' the rest COUPON_LIMIT_REACHED (no unique violation)');
    is_deeply(truth($c->{id}), { rows => $limit, users => 1, max_per_user => $limit,
        issued => $limit, numbered => $limit }, "... $limit row(s), issued = $limit");
}

# 4. the raw function (no wrapper), as the module calls it: 50 sessions of
#    one user on a limit of 1, released together by an advisory lock
my $raw = create(name => q{'raw'}, total => 1000, per_user => 1);
my $holder = $t->psql_bg("SELECT pg_advisory_lock(424242); SELECT pg_sleep(4);");
ok(wait_until(sub { dbq(q{SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
                        AND objid = 424242 AND granted}) == 1 }, timeout => 10),
    'raw: the barrier is held');
my ($rc, $out) = $t->run([ 'bash', '-c', <<'EOF', 'raw', $t->pg_conninfo, $raw->{id}, $t->dir ],
pids=()
for i in $(seq 1 50); do
    psql -X -A -t -q -v ON_ERROR_STOP=1 -c 'SELECT pg_advisory_lock_shared(424242)' \
         -c "SELECT cm_coupon_issue(77, $2)" "$1" >"$3/raw.$i" 2>&1 &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
cat "$3"/raw.*
EOF
    timeout => 120);
$t->psql_wait($holder);
my $issued = () = $out =~ /"status":"AVAILABLE"/g;
my $limited = () = $out =~ /ERROR:\s+COUPON_LIMIT_REACHED/g;
my @other = grep { /ERROR/ && !/COUPON_LIMIT_REACHED/ } split /\n/, $out;
is($issued, 1, 'raw calls, one user, 50 sessions at once, limit 1: exactly 1 issued');
is($limited, 49, '... 49 COUPON_LIMIT_REACHED');
is_deeply(\@other, [], '... and no other error');
is_deeply(truth($raw->{id}), { rows => 1, users => 1, max_per_user => 1, issued => 1,
    numbered => 1 }, '... 1 row, issued = 1');

# 5. t/bench/coupon_issue.sql runs as documented (stock larger than the run)
my $bench = create(name => q{'bench'}, total => 1000000, per_user => 100);
pgbench(scalar($t->read_file("$ROOT/t/bench/coupon_issue.sql")), 4, 50, cid => $bench->{id});
is(truth($bench->{id})->{rows}, 200, 't/bench/coupon_issue.sql: 200 coupons issued');

# every campaign: rows = issued, issued <= total
is(scalar dbq(<<'SQL'), '', 'every campaign: its rows = issued_quantity <= total_quantity');
SELECT string_agg(c.id::text, ',') FROM coupon_campaigns c
 WHERE c.issued_quantity <> (SELECT count(*) FROM user_coupons uc WHERE uc.campaign_id = c.id)
    OR c.issued_quantity > c.total_quantity
SQL

$t->done;
