package PayoutSim;

# Launcher and client for t/payoutsim, the payout API's simulator (core
# Perl only): the API on one port, the control on another.
#
#   my $ps = PayoutSim->start(log => $file);
#   $ps->port;                       # the API's port
#   $ps->control(failCount => 2, dropCallbacks => 1);
#   $ps->ledger;                     # [ {payoutId, amount, ..} ]: money sent
#   $ps->payout('po-1-1');           # its record, or undef
#   $ps->reset;
#   $ps->stop;                       # also at END

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
our $BIN = "$ROOT/t/payoutsim";
my $J = JSON::PP->new->utf8->canonical->allow_nonref;
my %LIVE;

sub start {
    my ($class, %o) = @_;
    my $self = bless { log => $o{log}, port => PgSim::free_port(),
        control_port => PgSim::free_port() }, $class;
    my @cmd = ($^X, $BIN, '--port', $self->{port},
        '--control-port', $self->{control_port},
        ($self->{log} ? ('--log', $self->{log}) : ()));
    my $pid = fork // croak "PayoutSim: fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        exec @cmd or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    $LIVE{$pid} = $self;
    my $deadline = time + 10;
    while (time < $deadline) {
        croak "PayoutSim: exited at start" if waitpid($pid, WNOHANG) == $pid;
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $self->{control_port}, Timeout => 1);
        if ($s) { close $s; return $self }
        sleep 0.05;
    }
    croak "PayoutSim: did not come up";
}

sub port { $_[0]{port} }
sub pid { $_[0]{pid} }

sub _call {
    my ($self, $method, $path, $body) = @_;
    my $r = HTTP::Tiny->new(timeout => 10)->request($method,
        "http://127.0.0.1:$self->{control_port}$path",
        { headers => { 'Content-Type' => 'application/json' },
          (defined $body ? (content => $J->encode($body)) : ()) });
    croak "PayoutSim: $method $path: $r->{status} $r->{content}"
        unless $r->{success};
    return $J->decode($r->{content});
}

sub control { my ($self, %s) = @_; return $self->_call('POST', '/__control', \%s) }
sub reset { $_[0]->_call('POST', '/__reset', {}) }
sub decide { $_[0]->_call('POST', '/__decide', {}) }
sub stats { $_[0]->_call('GET', '/__stats') }
sub ledger { $_[0]->stats->{ledger} }
sub payout { $_[0]->stats->{payouts}{ $_[1] } }
sub requests { $_[0]->stats->{requests} }
sub callbacks { $_[0]->stats->{callbacks} }

# money sent for one of our payouts, whatever its attempts' keys
sub sent_for {
    my ($self, $id) = @_;
    my $sum = 0;
    $sum += $_->{amount} for grep { $_->{payoutId} =~ /^po-\Q$id\E-\d+$/ } @{ $self->ledger };
    return $sum;
}

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
