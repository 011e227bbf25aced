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
our $BIN = "$ROOT/t/dpsim";
my $J = JSON::PP->new->utf8->canonical->allow_nonref;
my %LIVE;

sub start {
    my ($class, %o) = @_;
    my $self = bless {
        port         => $o{port} // PgSim::free_port(),
        control_port => $o{control_port} // PgSim::free_port(),
        log          => $o{log},
    }, $class;
    my @cmd = ($^X, $BIN, '--port', $self->{port},
        '--control-port', $self->{control_port},
        ($self->{log} ? ('--log', $self->{log}) : ()));
    my $pid = fork // croak "DpSim: fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        exec @cmd or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    $LIVE{$pid} = $self;
    my $deadline = time + 10;
    while (time < $deadline) {
        croak "DpSim: exited at start" if waitpid($pid, WNOHANG) == $pid;
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $self->{control_port}, Timeout => 1);
        if ($s) { close $s; return $self }
        sleep 0.05;
    }
    croak "DpSim: did not come up";
}

sub port { $_[0]{port} }
sub pid { $_[0]{pid} }

sub _call {
    my ($self, $method, $path, $body) = @_;
    my $r = HTTP::Tiny->new(timeout => 10)->request($method,
        "http://127.0.0.1:$self->{control_port}$path",
        { headers => { 'Content-Type' => 'application/json' },
          (defined $body ? (content => $J->encode($body)) : ()) });
    croak "DpSim: $method $path: $r->{status} $r->{content}"
        unless $r->{success};
    return $J->decode($r->{content});
}

sub control { my ($self, %s) = @_; return $self->_call('POST', '/__control', \%s) }
sub reset { $_[0]->_call('POST', '/__reset', {}) }
sub stats { $_[0]->_call('GET', '/__stats') }

# the received events (answered or not) of a type, or all
sub received {
    my ($self, $type) = @_;
    return [ grep { !defined $type || ($_->{type} // '') eq $type }
             @{ $self->stats->{received} } ];
}

sub stop {
    my ($self) = @_;
    local $?;       # from END: the test's exit status is not the child's
    my $pid = delete $self->{pid} or return;
    delete $LIVE{$pid};
    kill 'TERM', $pid;
    waitpid($pid, 0);
}

END { $_->stop for values %LIVE }

1;
