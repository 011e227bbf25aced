package CarrierSim;

# Launcher and client for t/carriersim, the parcel-tracking service's
# simulator (Sweet Tracker's shape, core Perl only): the API on one port,
# the control on another.  See t/carriersim.md.
#
#   my $cs = CarrierSim->start(key => 'k', log => $file);
#   $cs->port;                       # the API's port (an upstream)
#   $cs->advance('CJ', '123456789012', 3);          # pushed if registered
#   $cs->advance('CJ', '123456789012', 6, drop => 1);   # never pushed
#   $cs->control(duplicatePushes => 2, holdPushes => 1);
#   $cs->release('reverse');
#   my $st = $cs->stats;   # {registrations, tracking, pushes, held, api}
#   $cs->reset;
#   $cs->stop;             # also at END

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);

use PgSim ();
use parent -norequire, 'SimProc';
use SimProc ();

our $ROOT = abs_path(dirname(__FILE__) . '/../..');
our $BIN = "$ROOT/t/carriersim";

sub start {
    my ($class, %o) = @_;
    my $self = bless { port => PgSim::free_port(),
        control_port => PgSim::free_port() }, $class;
    return $self->spawn('CarrierSim', $BIN, '--port', $self->{port},
        '--control-port', $self->{control_port},
        (defined $o{key} ? ('--key', $o{key}) : ()),
        ($o{log} ? ('--log', $o{log}) : ()));
}

sub port { $_[0]{port} }
sub control_port { $_[0]{control_port} }

# the parcel (carrier CJ|LOTTE|HANJIN, invoice) is now at level: recorded,
# pushed to its registration unless drop => 1; time => epoch ms
sub advance {
    my ($self, $carrier, $invoice, $level, %o) = @_;
    return $self->_call('POST', '/__advance', { carrier => $carrier,
        invoice => "$invoice", level => 0 + $level, %o });
}

sub control { my ($self, %s) = @_; return $self->_call('POST', '/__control', \%s) }
sub release { $_[0]->_call('POST', '/__release', { order => $_[1] // 'fifo' }) }
sub reset { $_[0]->_call('POST', '/__reset', {}) }
sub stats { $_[0]->_call('GET', '/__stats') }

1;
