package SimProc;

# What the simulators' launchers share (DpSim, NotifySim, CarrierSim): a
# simulator is one core-Perl process of t/, started with its arguments,
# up once its control port accepts, controlled with JSON over HTTP on that
# port, stopped with TERM (and at END).
#
#   package FooSim; use parent -norequire, 'SimProc';
#   my $self = bless { control_port => $p, ... }, $class;
#   $self->spawn('FooSim', "$ROOT/t/foosim", @args);
#   $self->_call('POST', '/__control', {...});

use strict;
use warnings;

use Carp qw(croak);
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

my $J = JSON::PP->new->utf8->canonical->allow_nonref;
my %LIVE;

# spawn($name, $bin, @args): runs `perl $bin @args`; returns $self once
# $self->{control_port} accepts (croaks after 10 s or if it exits)
sub spawn {
    my ($self, $name, $bin, @args) = @_;
    $self->{name} = $name;
    my $pid = fork // croak "$name: fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        exec $^X, $bin, @args or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    $LIVE{$pid} = $self;
    my $deadline = time + 10;
    while (time < $deadline) {
        croak "$name: exited at start" if waitpid($pid, WNOHANG) == $pid;
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $self->{control_port}, Timeout => 1);
        if ($s) { close $s; return $self }
        sleep 0.05;
    }
    croak "$name: did not come up";
}

sub pid { $_[0]{pid} }

# a control call: the decoded JSON answer; croaks unless 2xx
sub _call {
    my ($self, $method, $path, $body) = @_;
    my $r = HTTP::Tiny->new(timeout => 10)->request($method,
        "http://127.0.0.1:$self->{control_port}$path",
        { headers => { 'Content-Type' => 'application/json' },
          (defined $body ? (content => $J->encode($body)) : ()) });
    croak "$self->{name}: $method $path: $r->{status} $r->{content}"
        unless $r->{success};
    return $J->decode($r->{content});
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
