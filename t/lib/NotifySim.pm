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
our $BIN = "$ROOT/t/notifysim";
my $J = JSON::PP->new->utf8->canonical->allow_nonref;
my %LIVE;

sub start {
    my ($class, %o) = @_;
    my $self = bless { log => $o{log},
        ports => { map { $_ => PgSim::free_port() } qw(alimtalk sms email control) },
    }, $class;
    my @cmd = ($^X, $BIN, (map { ("--$_-port", $self->{ports}{$_}) }
        qw(alimtalk sms email control)),
        ($self->{log} ? ('--log', $self->{log}) : ()));
    my $pid = fork // croak "NotifySim: fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        exec @cmd or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    $LIVE{$pid} = $self;
    my $deadline = time + 10;
    while (time < $deadline) {
        croak "NotifySim: exited at start" if waitpid($pid, WNOHANG) == $pid;
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $self->{ports}{control}, Timeout => 1);
        if ($s) { close $s; return $self }
        sleep 0.05;
    }
    croak "NotifySim: did not come up";
}

sub port { $_[0]{ports}{$_[1]} }
sub pid { $_[0]{pid} }

sub _call {
    my ($self, $method, $path, $body) = @_;
    my $r = HTTP::Tiny->new(timeout => 10)->request($method,
        "http://127.0.0.1:$self->{ports}{control}$path",
        { headers => { 'Content-Type' => 'application/json' },
          (defined $body ? (content => $J->encode($body)) : ()) });
    croak "NotifySim: $method $path: $r->{status} $r->{content}"
        unless $r->{success};
    return $J->decode($r->{content});
}

sub control { my ($self, %s) = @_; return $self->_call('POST', '/__control', \%s) }
sub reset { $_[0]->_call('POST', '/__reset', {}) }
sub stats { $_[0]->_call('GET', '/__stats') }

# the messages a provider received (answered or not), in arrival order
sub received { return $_[0]->stats->{$_[1]}{received} }

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
