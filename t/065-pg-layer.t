#!/usr/bin/perl
# The Postgres layer's own behaviours, forced deterministically from the
# database side:
#   - a serialization failure (40001) is retried inside the module: the
#     client never sees it, and the work is done exactly once;
#   - past the retries it is 503 DB_UNAVAILABLE, nothing done;
#   - a statement over commerce_pg_statement_timeout is 503 DB_UNAVAILABLE
#     (SQLSTATE 57014), the connection stays usable;
#   - Postgres closing idle pooled connections (pg_terminate_backend, as
#     idle_session_timeout or a restart would) is noticed by their read
#     handlers, and a read sent on one not noticed yet is sent again: the
#     next requests are served, no error;
#   - with a pipeline depth, reads go behind reads and never behind a
#     write that waits for a row lock.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

# a trigger that fails the next N balance updates with 40001; the counter
# is a sequence, which a rolled-back transaction does not roll back
$t->psql(<<'SQL');
CREATE SEQUENCE t_fail_seq;
CREATE TABLE t_fail (n bigint NOT NULL);
INSERT INTO t_fail VALUES (0);
CREATE FUNCTION t_fail_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id = 77 AND nextval('t_fail_seq') <= (SELECT n FROM t_fail) THEN
        RAISE EXCEPTION USING ERRCODE = '40001',
            MESSAGE = 'could not serialize access (forced by the test)';
    END IF;
    IF NEW.id = 78 THEN
        PERFORM pg_sleep(3);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER t_fail BEFORE UPDATE ON users FOR EACH ROW
    EXECUTE FUNCTION t_fail_trigger();
SQL

$t->write_config($t->default_config(
    http_extra => 'commerce_pg_statement_timeout 1s;'));
$t->start_nginx;

sub balance { $t->psql("SELECT balance FROM users WHERE id = $_[0]") + 0 }
sub ledger { $t->psql("SELECT count(*) FROM balance_ledger WHERE user_id"
    . " = $_[0]") + 0 }
sub fail_next {
    my ($n) = @_;
    $t->psql("SELECT setval('t_fail_seq', 1, false); UPDATE t_fail SET n = $n");
}

# --- 40001, retried -----------------------------------------------------------

fail_next(2);
my ($b0, $l0) = (balance(77), ledger(77));
my $r = $t->post('/api/v1/balance/charge', { amount => 500 }, user => 77);
is($r->{status}, 200, 'two serialization failures, then success: 200');
is($r->{json}{balance}, $b0 + 500, 'charged once');
is(balance(77), $b0 + 500, 'balance +500 exactly');
is(ledger(77), $l0 + 1, 'one ledger row');
is($t->psql("SELECT last_value FROM t_fail_seq"), 3,
    'the statement ran 3 times (2 failures + 1)');

# --- 40001 past the retries ----------------------------------------------------

fail_next(10);
($b0, $l0) = (balance(77), ledger(77));
$r = $t->post('/api/v1/balance/charge', { amount => 500 }, user => 77);
is_error($r, 503, 'DB_UNAVAILABLE', 'failing every time: 503 after the retries');
is($r->{headers}{'retry-after'}, '1', 'with Retry-After');
is(balance(77), $b0, 'nothing charged');
is(ledger(77), $l0, 'no ledger row');
my $tries = $t->psql("SELECT last_value FROM t_fail_seq");
ok($tries >= 2 && $tries <= 4, "a bounded number of tries ($tries)");
fail_next(0);
is($t->post('/api/v1/balance/charge', { amount => 1 }, user => 77)->{status},
    200, 'and the next charge goes through');

# --- statement timeout ---------------------------------------------------------

$b0 = balance(78);
my $t0 = time;
$r = $t->post('/api/v1/balance/charge', { amount => 500 }, user => 78);
is_error($r, 503, 'DB_UNAVAILABLE', 'a statement over 1 s: 503');
ok(time - $t0 < 3, 'answered at the statement timeout, not after the sleep');
is(balance(78), $b0, 'nothing charged');
my @ok = map { $t->get('/api/v1/balance', user => 1)->{status} } 1 .. 20;
is_deeply(\@ok, [ (200) x 20 ], 'the pool serves on');
ok(scalar($t->grep_log(qr/database error 57014/)), 'logged with its SQLSTATE');

# --- Postgres closes idle connections ------------------------------------------

my $killed = $t->psql("SELECT count(pg_terminate_backend(pid)) FROM"
    . " pg_stat_activity WHERE application_name = 'ngx_commerce'");
ok($killed > 0, "Postgres closed the $killed pooled connections");
# at once, before the workers have noticed: a read may be sent on several
# closed connections in a row before it meets a live one
my @refused;
for (1 .. 30) {
    my $r = $t->get('/api/v1/products/1', user => 1);
    push @refused, "$r->{status} " . ($r->{json}{code} // '-')
        if $r->{status} != 200;
}
is_deeply(\@refused, [], 'every request afterwards is served (none refused,'
    . ' e.g. 503 DB_UNAVAILABLE)');
ok(wait_until(sub { $t->psql("SELECT count(*) FROM pg_stat_activity WHERE"
    . " application_name = 'ngx_commerce'") > 0 }, timeout => 5),
    'the pools reconnected');

# --- reads pipeline behind reads, never behind a write -------------------------

# one worker, two connections, eight queries in flight on each (alone: the
# main instance's connections would be counted below)
$t->stop_nginx;
$t->write_config($t->default_config(workers => 1, http_extra => <<'EOF'),
commerce_pg_pool_size 2;
commerce_pg_pipeline_depth 8;
commerce_pg_statement_timeout 10s;
commerce_order_expiry_interval 1h;
EOF
    name => 'pipe');
$t->start_nginx(name => 'pipe');
ok(wait_until(sub { $t->get('/api/v1/products/1', user => 1, name => 'pipe')
    ->{status} == 200 }), 'pipelining instance warm');
ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM pg_stat_activity
    WHERE application_name = 'ngx_commerce' AND state = 'idle'}) == 2 }),
    'both connections up and idle');

my $bal90 = balance(90);
my $lock = $t->psql_bg(q{BEGIN;
    SELECT id FROM users WHERE id = 90 FOR UPDATE;
    SELECT pg_sleep(3) AS pipe_lock_90;
    COMMIT;});
ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM pg_stat_activity
    WHERE query LIKE '%pipe_lock_90%' AND state = 'active'
      AND pid <> pg_backend_pid()}) == 1 }), 'user 90 locked');
# a write that waits for the lock, on one of the two connections
my $slow = $t->background(sub {
    my $r = $t->post('/api/v1/balance/charge', { amount => 90 }, user => 90,
        name => 'pipe', timeout => 20);
    return { status => $r->{status} };
});
ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM pg_stat_activity
    WHERE application_name = 'ngx_commerce' AND wait_event_type = 'Lock'})
    == 1 }), 'the charge waits for the lock');

my @reads = $t->concurrent([ map { [ 'GET', '/api/v1/products/' . (1 + $_ % 50),
    undef, { user => 1 + $_ } ] } 1 .. 40 ], name => 'pipe', timeout => 20);
is(scalar(grep { $_->{status} == 200 } @reads), 40,
    '40 concurrent reads while the write waits: all 200');
my ($slowest) = sort { $b <=> $a } map { $_->{elapsed} } @reads;
cmp_ok($slowest, '<', 1.5, sprintf('... none behind the waiting write '
    . '(slowest %.2f s, the lock holds 3 s)', $slowest));
is($t->psql(q{SELECT count(*) FROM pg_stat_activity
    WHERE application_name = 'ngx_commerce' AND wait_event_type = 'Lock'}),
    1, '... which still waits');
is($t->collect($slow)->{status}, 200, 'the charge completes after the lock');
$t->psql_wait($lock);
is(balance(90), $bal90 + 90, 'charged once');

$t->allow_log(qr/terminating connection due to administrator command|server closed the connection|canceling statement due to statement timeout/);
$t->done;
