package DpSim;

# Launcher and client for t/dpsim, the data-platform simulator (core Perl
# only).  One simulator process: the event API on its port, the control
# endpoints on a second port (reachable while the API refuses).
#
#   my $dp = DpSim->start;                    # free ports
#   $dp->control(failCount => 2, failStatus => 503);
#   my $st = $dp->stats;    # {requests, accepted, distinct, received => [...]}
#   $dp->reset;
#   $dp->stop;              # also at END

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);

use PgSim ();
use parent -norequire, 'SimProc';
use SimProc ();

our $ROOT = abs_path(dirname(__FILE__) . '/../..');
our $BIN = "$ROOT/t/dpsim";

sub start {
    my ($class, %o) = @_;
    my $self = bless {
        port         => $o{port} // PgSim::free_port(),
        control_port => $o{control_port} // PgSim::free_port(),
        log          => $o{log},
    }, $class;
    return $self->spawn('DpSim', $BIN, '--port', $self->{port},
        '--control-port', $self->{control_port},
        ($self->{log} ? ('--log', $self->{log}) : ()));
}

sub port { $_[0]{port} }

sub control { my ($self, %s) = @_; return $self->_call('POST', '/__control', \%s) }
sub reset { $_[0]->_call('POST', '/__reset', {}) }
sub stats { $_[0]->_call('GET', '/__stats') }

# the received events (answered or not) of a type, or all
sub received {
    my ($self, $type) = @_;
    return [ grep { !defined $type || ($_->{type} // '') eq $type }
             @{ $self->stats->{received} } ];
}

1;
