package PayoutSim;

# Launcher and client for t/payoutsim, the payout API's simulator (core
# Perl only; see t/payoutsim.md): the API on one port, the control on
# another.  The process and its control calls are DpSim's (the same
# --port/--control-port, /__control, /__reset, /__stats).
#
#   my $ps = PayoutSim->start(log => $file);
#   $ps->port;                       # the API's port
#   $ps->control(failCount => 2, dropCallbacks => 1);
#   $ps->ledger;                     # [ {payoutId, amount, ..} ]: money sent
#   $ps->sent_for($id);              # money sent for our payout $id, all keys
#   $ps->payout('po-1-1');           # its record, or undef
#   $ps->decide;                     # decide the payouts left pending now
#   $ps->reset;
#   $ps->stop;                       # also at END

use strict;
use warnings;

use DpSim ();

our @ISA = ('DpSim');

sub start {
    my ($class, %o) = @_;
    local $DpSim::BIN = "$DpSim::ROOT/t/payoutsim";
    return $class->SUPER::start(%o);
}

sub decide { $_[0]->_call('POST', '/__decide', {}) }
sub ledger { $_[0]->stats->{ledger} }
sub payout { $_[0]->stats->{payouts}{ $_[1] } }
sub requests { $_[0]->stats->{requests} }
sub callbacks { $_[0]->stats->{callbacks} }

# money sent for one of our payouts, whatever its attempts' keys
sub sent_for {
    my ($self, $id) = @_;
    my $sum = 0;
    $sum += $_->{amount}
        for grep { $_->{payoutId} =~ /^po-\Q$id\E-\d+$/ } @{ $self->ledger };
    return $sum;
}

1;
