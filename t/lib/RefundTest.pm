package RefundTest;
# The stack of the refund tests (t/182, t/183): Postgres with the demo
# data, two sellers' stores (X: user 901, store 901; Y: 902, 902), prices
# and stores set for the products given as [id, price, store or undef],
# the PG simulator, nginx with a gateway and a fast refund job
# (commerce_refund interval=200ms attempts=5 backoff=1s), MixPay's helpers
# bound to both.  start($seed, @products) -> ($t, $sim).

use strict;
use warnings;
use CommerceTest;
use PgSim;
use MixPay;

sub start {
    my ($seed, @products) = @_;
    my $t = CommerceTest->new;
    $t->start_pg;
    $t->load_demo;
    my $ct = 'v1.1.AAAAAAAAAAAAAAAA.' . ('A' x 22);
    my $values = join ', ', map {
        sprintf '(%d, %d, %s)', $_->[0], $_->[1], $_->[2] // 'NULL::bigint' } @products;
    $t->psql(<<"SQL");
UPDATE users SET role = 'ADMIN' WHERE id = 2;
UPDATE users SET role = 'SELLER' WHERE id IN (901, 902);
INSERT INTO stores (id, owner_id, name, bank_code, account_number_ct, account_holder_ct,
                    account_last4)
VALUES (901, 901, 'Store X', '004', '$ct', '$ct', '1234'),
       (902, 902, 'Store Y', '004', '$ct', '$ct', '5678');
UPDATE products p SET price = v.price, stock = 100, store_id = v.store
  FROM (VALUES $values) AS v(id, price, store)
 WHERE p.id = v.id;
SQL
    my $sim = PgSim->start(seed => $seed, failRate => 0, latencyMs => [0, 5],
        decisionMs => [50, 100], log => $t->dir . '/pgsim.log');
    my $port = $sim->port;
    $t->write_config($t->default_config(
        main_extra => $t->account_main,
        http_extra => $t->account_keys . <<"EOF"));
commerce_zone 1m;
upstream pg_a { server 127.0.0.1:$port; keepalive 8; }
commerce_gateway pg_a upstream=pg_a timeout=1s connect_timeout=500ms;
commerce_gateway_callback_url http://127.0.0.1:%%PORT%%/api/v1/payments/callback;
commerce_reconcile_interval 300ms;
commerce_reconcile_age 1s;
commerce_refund interval=200ms attempts=5 backoff=1s lease=10s;
EOF
    $t->start_nginx;
    MixPay::init($t, $sim);
    return ($t, $sim);
}

1;
