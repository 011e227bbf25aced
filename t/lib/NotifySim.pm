package NotifySim;

# Launcher and client for t/notifysim, the notification providers'
# simulator (core Perl only): Alimtalk, SMS and e-mail each on its port,
# the control endpoints on a fourth (reachable while a provider refuses).
#
#   my $ns = NotifySim->start(log => $file);
#   $ns->port('alimtalk');
#   $ns->control(alimtalk => { failCount => 2 }, sms => { hang => 1 });
#   my $msgs = $ns->received('sms');    # [ {recipientNo, body, status..} ]
#   $ns->reset;
#   $ns->stop;              # also at END

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);

use PgSim ();
use parent -norequire, 'SimProc';
use SimProc ();

our $ROOT = abs_path(dirname(__FILE__) . '/../..');
our $BIN = "$ROOT/t/notifysim";

sub start {
    my ($class, %o) = @_;
    my $self = bless { log => $o{log},
        ports => { map { $_ => PgSim::free_port() } qw(alimtalk sms email control) },
    }, $class;
    $self->{control_port} = $self->{ports}{control};
    return $self->spawn('NotifySim', $BIN,
        (map { ("--$_-port", $self->{ports}{$_}) } qw(alimtalk sms email control)),
        ($self->{log} ? ('--log', $self->{log}) : ()));
}

sub port { $_[0]{ports}{$_[1]} }

sub control { my ($self, %s) = @_; return $self->_call('POST', '/__control', \%s) }
sub reset { $_[0]->_call('POST', '/__reset', {}) }
sub stats { $_[0]->_call('GET', '/__stats') }

# the messages a provider received (answered or not), in arrival order
sub received { return $_[0]->stats->{$_[1]}{received} }

1;
