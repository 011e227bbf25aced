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

use Carp qw(croak);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use PgSim ();

our $ROOT = abs_path(dirname(__FILE__) . '/../..');
our $BIN = "$ROOT/t/carriersim";
my $J = JSON::PP->new->utf8->canonical->allow_nonref;
my %LIVE;

sub start {
    my ($class, %o) = @_;
    my $self = bless { log => $o{log}, key => $o{key},
        port => PgSim::free_port(), cport => PgSim::free_port() }, $class;
    my @cmd = ($^X, $BIN, '--port', $self->{port}, '--control-port',
        $self->{cport}, (defined $o{key} ? ('--key', $o{key}) : ()),
        ($self->{log} ? ('--log', $self->{log}) : ()));
    my $pid = fork // croak "CarrierSim: fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        exec @cmd or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    $LIVE{$pid} = $self;
    my $deadline = time + 10;
    while (time < $deadline) {
        croak "CarrierSim: exited at start" if waitpid($pid, WNOHANG) == $pid;
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $self->{cport}, Timeout => 1);
        if ($s) { close $s; return $self }
        sleep 0.05;
    }
    croak "CarrierSim: did not come up";
}

sub port { $_[0]{port} }
sub control_port { $_[0]{cport} }
sub pid { $_[0]{pid} }

sub _call {
    my ($self, $method, $path, $body) = @_;
    my $r = HTTP::Tiny->new(timeout => 10)->request($method,
        "http://127.0.0.1:$self->{cport}$path",
        { headers => { 'Content-Type' => 'application/json' },
          (defined $body ? (content => $J->encode($body)) : ()) });
    croak "CarrierSim: $method $path: $r->{status} $r->{content}"
        unless $r->{success};
    return $J->decode($r->{content});
}

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

sub stop {
    my ($self) = @_;
    local $?;
    my $pid = delete $self->{pid} or return;
    delete $LIVE{$pid};
    kill 'TERM', $pid;
    waitpid($pid, 0);
}

END { $_->stop for values %LIVE }

1;
