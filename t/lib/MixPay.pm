package MixPay;
# Helpers of the mixed-payment tests (t/175, t/178): the buyer's points,
# balance and ledger, an order's payment rows, the PG simulator's
# transactions, and the parts of a "payment" list.  MixPay::init($t, $sim)
# once, after both are started.

use strict;
use warnings;
use Exporter 'import';

our @EXPORT = qw(grant points balance stock ledger pay_rows pg_txns creates
    state pts bal card);

our $OK_CARD = '1111-1111-1111-1111';    # the simulator approves it

my ($t, $sim);

sub init { ($t, $sim) = @_ }

# n points to user (an ADMIN grant by user 2)
sub grant {
    my ($user, $n) = @_;
    $t->psql("SELECT cm_points_grant(2, $user, $n, 'mixed payments test',"
        . " NULL)");
}
sub points { 0 + $t->psql("SELECT points FROM users WHERE id = $_[0]") }
sub balance { 0 + $t->psql("SELECT balance FROM users WHERE id = $_[0]") }
sub stock { 0 + $t->psql("SELECT stock FROM products WHERE id = $_[0]") }
# the user's points movements, oldest first: "KIND amount after"
sub ledger {
    [ $t->psql("SELECT kind || ' ' || amount || ' ' || points_after"
        . " FROM points_ledger WHERE user_id = $_[0] AND kind <> 'GRANT'"
        . " ORDER BY id") ]
}
# the order's payments: "METHOD STATUS amount", oldest first
sub pay_rows {
    [ $t->psql("SELECT method || ' ' || status || ' ' || amount"
        . " FROM payments WHERE order_id = $_[0] ORDER BY id") ]
}
sub pg_txns { $sim->transactions(orderId => sprintf('%06d', $_[0])) }
sub creates { $sim->counters->{create} // 0 }
sub state { $t->db_state(skip => ['audit_log']) }

# the parts of a "payment" list
sub pts { { method => 'POINTS', amount => $_[0] } }
sub bal { { method => 'BALANCE', amount => $_[0] } }
sub card {
    { method => 'CARD', amount => $_[0], cardType => 'KB',
      cardNo => $_[1] // $OK_CARD }
}

1;
