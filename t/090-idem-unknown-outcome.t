#!/usr/bin/perl
# Idempotency-Key when the module cannot know whether the work was done:
# the database connection breaks after a balance operation was sent.
#
# The operation and its stored answer are one transaction
# (sql/functions/50_idem.sql), and before the key is freed the module settles
# the outcome with cm_idem_abandon (waits for the statement's transaction,
# ends its backend, then looks):
#
#   - committed, but the answer never came (the module gave up on the
#     connection after statement_timeout + 1 s while the commit was slow):
#     the client gets the real answer, and a retry replays it; charged once;
#   - not committed (the commit failed after the module gave up): 503, the
#     key is freed, the retry runs once;
#   - the server ended the backend mid-statement: 503, key freed, the retry
#     runs once.
#
# A slow or failing commit is made with a test-only deferred constraint
# trigger on balance_ledger (it runs at COMMIT, after statement_timeout no
# longer applies).  Before this, the key was freed on every 5xx, and the
# retry of a committed charge charged again.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use CommerceTest;

my $t = CommerceTest->new;
$t->start_pg;
$t->load_demo;

$t->psql(<<'EOF');
CREATE TABLE t_commit_delay (seconds float8 NOT NULL, fail bool NOT NULL);
INSERT INTO t_commit_delay VALUES (0, false);
CREATE FUNCTION t_commit_delay() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d record;
BEGIN
    SELECT * INTO d FROM t_commit_delay;
    IF d.seconds > 0 THEN
        PERFORM pg_sleep(d.seconds);
    END IF;
    IF d.fail THEN
        RAISE EXCEPTION 'test: this commit fails';
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER t_commit_delay AFTER INSERT ON balance_ledger
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION t_commit_delay();
EOF

# one worker, so the pool's connections and the log are one worker's
$t->write_config($t->default_config(workers => 1, http_extra => <<'EOF'));
commerce_pg_pool_size 4;
commerce_pg_statement_timeout 1s;
commerce_order_expiry_interval 1h;
EOF
$t->start_nginx;
$t->allow_log(qr/query timed out|connection lost|could not receive data|server closed the connection|terminating connection/);

sub commit_delay {
    my ($seconds, $fail) = @_;
    $t->psql("UPDATE t_commit_delay SET seconds = $seconds, fail = "
        . ($fail ? 'true' : 'false'));
}

sub balance { 0 + $t->psql("SELECT balance FROM users WHERE id = $_[0]") }
sub ledger_rows {
    0 + $t->psql("SELECT count(*) FROM balance_ledger WHERE user_id = $_[0]");
}
sub key_row {
    my ($user, $key) = @_;
    return scalar $t->psql("SELECT state || '|' || coalesce(http_status::text,"
        . " '-') FROM idempotency_keys WHERE user_id = $user"
        . " AND idem_key = '$key'") // '';
}
sub charge {
    my ($user, $amount, $key) = @_;
    return $t->post('/api/v1/balance/charge', { amount => $amount },
        user => $user, headers => { 'Idempotency-Key' => $key },
        timeout => 20);
}
sub replayed { $_[0]{headers}{'idempotent-replayed'} }

# ---------------------------------------------------------------------------
# 1. committed, answer lost: the module gave up, the commit went through

my $bal = balance(31);
my $rows = ledger_rows(31);
commit_delay(3.5, 0);
my $t0 = time;
my $r = charge(31, 777, 'lost-answer-31');
my $took = time - $t0;
is($r->{status}, 200, 'committed after the module gave up: 200')
    or diag($r->{body});
is($r->{json}{balance}, $bal + 777, '... the balance the charge made');
ok(!defined replayed($r), '... sent as the first answer, not a replay');
cmp_ok($took, '>=', 1.9, sprintf('... after the 2 s guard (%.1f s)', $took));
ok(scalar $t->grep_log(qr/connection was lost, but the work for key "lost-answer-31" was committed/),
    '... and the log says what happened');
is(balance(31), $bal + 777, 'charged once');
is(ledger_rows(31), $rows + 1, 'one ledger row');
is(key_row(31, 'lost-answer-31'), 'DONE|200', 'the key holds the answer');

commit_delay(0, 0);
my $again = charge(31, 777, 'lost-answer-31');
is($again->{status}, 200, 'the retry: 200');
is(replayed($again), 'true', '... replayed');
is($again->{body}, $r->{body}, '... the same answer');
is(balance(31), $bal + 777, 'still charged once');

# the same for an order paid from the balance (the debit is a ledger row)
my $stock = 0 + $t->psql('SELECT stock FROM products WHERE id = 33');
$bal = balance(32);
commit_delay(3.5, 0);
$r = $t->post('/api/v1/orders', { items => [ { productId => 33,
    quantity => 1 } ], payment => { method => 'BALANCE' } }, user => 32,
    headers => { 'Idempotency-Key' => 'lost-order-32' }, timeout => 20);
is($r->{status}, 201, 'an order committed after the module gave up: 201')
    or diag($r->{body});
is($r->{json}{status}, 'PAID', '... PAID');
commit_delay(0, 0);
$again = $t->post('/api/v1/orders', { items => [ { productId => 33,
    quantity => 1 } ], payment => { method => 'BALANCE' } }, user => 32,
    headers => { 'Idempotency-Key' => 'lost-order-32' });
is($again->{status}, 201, 'the retry: 201');
is(replayed($again), 'true', '... replayed');
is($again->{json}{id}, $r->{json}{id}, '... the same order');
is(0 + $t->psql('SELECT count(*) FROM orders WHERE user_id = 32'), 1,
    'one order');
is(0 + $t->psql('SELECT stock FROM products WHERE id = 33'), $stock - 1,
    'stock taken once');

# ---------------------------------------------------------------------------
# 2. not committed: the commit failed after the module gave up

$bal = balance(34);
commit_delay(3, 1);
$r = charge(34, 778, 'failed-commit-34');
is($r->{status}, 503, 'the commit failed after the module gave up: 503')
    or diag($r->{body});
is($r->{json}{code}, 'DB_UNAVAILABLE', '... DB_UNAVAILABLE');
ok(scalar $t->grep_log(qr/nothing was committed for key "failed-commit-34": key freed/),
    '... logged');
is(balance(34), $bal, 'nothing charged');
is(key_row(34, 'failed-commit-34'), '', 'the key is freed');

commit_delay(0, 0);
$again = charge(34, 778, 'failed-commit-34');
is($again->{status}, 200, 'the retry runs: 200');
ok(!defined replayed($again), '... not a replay');
is(balance(34), $bal + 778, 'charged once');

# ---------------------------------------------------------------------------
# 3. the server ends the backend while the charge waits for a row lock

$bal = balance(35);
my $lock = $t->psql_bg(q{BEGIN;
    SELECT id FROM users WHERE id = 35 FOR UPDATE;
    SELECT pg_sleep(3) AS unknown_lock_35;
    COMMIT;});
ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM pg_stat_activity
    WHERE query LIKE '%unknown_lock_35%' AND state = 'active'
      AND pid <> pg_backend_pid()}) == 1 }), 'user 35 locked');
my $bg = $t->background(sub {
    my $r = charge(35, 779, 'killed-35');
    return { status => $r->{status}, code => $r->{json} && $r->{json}{code} };
});
ok(wait_until(sub { $t->psql(q{SELECT count(*) FROM pg_stat_activity
    WHERE application_name = 'ngx_commerce' AND wait_event_type = 'Lock'})
    == 1 }), 'the charge waits for the lock');
is($t->psql(q{SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE application_name = 'ngx_commerce' AND wait_event_type = 'Lock'}),
    1, 'its backend is ended');
my $killed = $t->collect($bg);
is($killed->{status}, 503, 'the charge: 503');
is($killed->{code}, 'DB_UNAVAILABLE', '... DB_UNAVAILABLE');
is(key_row(35, 'killed-35'), '', 'the key is freed');
$t->psql_wait($lock);
is(balance(35), $bal, 'nothing charged');
$again = charge(35, 779, 'killed-35');
is($again->{status}, 200, 'the retry runs: 200');
is(balance(35), $bal + 779, 'charged once');

$t->check_consistency;
$t->done;
