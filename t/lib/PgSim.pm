package PgSim;

# Launcher and client for t/pgsim, the payment-gateway simulator (core Perl
# only).  Each PgSim is one simulator process: one PG on its own port, with
# a second port for the control endpoints (reachable even while the PG
# refuses connections).  See t/pgsim.md.
#
#   use lib 't/lib';
#   use PgSim;
#
#   my $pg = PgSim->start(failRate => 0, latencyMs => [0, 5],
#       decisionMs => [50, 100], seed => 1);
#   my $url = $pg->url;                         # http://127.0.0.1:PORT
#   my $r = $pg->request('POST', '/api/v1/payments', user => 7,
#       body => { orderId => 'ORDER-1', ... });
#   $pg->control({ hang => ['create'] });       # merge settings
#   is($pg->counters->{create}, 1);
#   $pg->reset;                                 # back to the start settings
#   $pg->stop;
#
# start(%o): port (default: a free one), control_port (default: a free
# one), host (127.0.0.1), log (file; default a temporary file, kept with
# COMMERCE_TEST_KEEP=1), quiet => 1 (no request log), args => [ extra
# t/pgsim flags ], timeout (startup, s, default 10); every other key is a
# setting (camelCase as in t/pgsim.md, or snake_case: fail_rate,
# latency_ms ...) that becomes part of the startup defaults (what /__reset
# returns to).

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Errno qw(EAGAIN EWOULDBLOCK EINTR EINPROGRESS);
use File::Basename qw(dirname);
use File::Temp ();
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

our $ROOT = abs_path(dirname(__FILE__) . '/../..');
our $BIN = "$ROOT/t/pgsim";
our $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

my %LIVE;           # pid => PgSim, stopped at END
my %PORT_LOCKS;     # port => UDP lock socket

# A free loopback TCP port below the ephemeral range, held against other
# test processes by a UDP socket bound to the same number (the harness'
# trick, so `prove -j` runs do not collide).
sub free_port {
    for (1 .. 200) {
        my $port = 20000 + int(rand(12000));
        next if $PORT_LOCKS{$port};
        my $lock = IO::Socket::INET->new(Proto => 'udp',
            LocalAddr => "127.0.0.1:$port") or next;
        my $probe = IO::Socket::INET->new(Proto => 'tcp',
            LocalAddr => "127.0.0.1:$port", Listen => 1, ReuseAddr => 1)
            or next;
        close $probe;
        $PORT_LOCKS{$port} = $lock;
        return $port;
    }
    croak "PgSim: no free port found";
}

sub _camel {
    my ($k) = @_;
    $k =~ s/_(\w)/\u$1/g;
    return $k;
}

sub start {
    my ($class, %o) = @_;
    my $self = bless {
        host         => delete $o{host} // '127.0.0.1',
        port         => delete $o{port},
        control_port => delete $o{control_port},
        owner        => $$,
    }, $class;
    my $args = delete $o{args} // [];
    my $quiet = delete $o{quiet};
    my $timeout = delete $o{timeout} // 10;
    my $log = delete $o{log};
    $self->{port} //= free_port();
    $self->{control_port} //= free_port();

    if (!defined $log) {
        my $dir = $ENV{COMMERCE_TEST_TMPDIR} // $ENV{TMPDIR} // '/tmp';
        my $keep = $ENV{COMMERCE_TEST_KEEP};
        $self->{log_tmp} = File::Temp->new(DIR => $dir,
            TEMPLATE => "pgsim-$self->{port}-XXXXXX", SUFFIX => '.log',
            UNLINK => !$keep);
        $log = $self->{log_tmp}->filename;
        print STDERR "# pgsim log: $log\n" if $keep;
    }
    $self->{log} = $log;

    my %settings = map { _camel($_) => $o{$_} } keys %o;
    my @cmd = ($^X, $BIN, '--host', $self->{host}, '--port', $self->{port},
        '--control-port', $self->{control_port}, '--log', $log,
        '--parent', $$, ($quiet ? '--quiet' : ()),
        (%settings ? ('--config', $JSON->encode(\%settings)) : ()), @$args);

    my $pid = fork // croak "PgSim: fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log;
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    $LIVE{$pid} = $self;

    # ready once the control port answers /__health
    my $deadline = time + $timeout;
    while (1) {
        my $r = $self->request('GET', '/__health', control => 1,
            timeout => 1);
        last if $r->{status} == 200;
        my $exited = waitpid($pid, WNOHANG) == $pid;
        if ($exited || time > $deadline) {
            my $why = $exited ? 'exited' : 'not ready in time';
            $self->stop unless $exited;
            delete $LIVE{$pid};
            delete $self->{pid};        # reaped: never signal that pid again
            croak "PgSim: t/pgsim $why on port $self->{port}:\n"
                . $self->log_text;
        }
        sleep 0.05;
    }
    return $self;
}

sub pid { $_[0]{pid} }
sub port { $_[0]{port} }
sub control_port { $_[0]{control_port} }
sub host { $_[0]{host} }
sub url { "http://$_[0]{host}:$_[0]{port}" }
sub log_file { $_[0]{log} }

sub log_text {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return '';
    local $/;
    my $t = <$fh>;
    return $t // '';
}

# request($method, $path, body => (string | ref -> JSON), user => X-USER-ID,
# headers => {...}, content_type => ..., control => 1 (control port),
# port => N, raw => bytes (sent as they are), timeout => s (default 10),
# keepalive => 1 (no Connection: close)): one request on a new connection.
# Returns { status (0 when none), headers (lowercased), body, json, error
# ('timeout', 'reset', 'refused', ...), elapsed }.
sub request {
    my ($self, $method, $path, %o) = @_;
    my $port = $o{port} // ($o{control} ? $self->{control_port}
        : $self->{port});
    my $bytes = $o{raw} // build_request($method, $path, %o);
    return http_exchange($self->{host}, $port, $bytes, $o{timeout} // 10);
}

sub build_request {
    my ($method, $path, %o) = @_;
    my $body = $o{body};
    $body = $JSON->encode($body) if ref $body;
    my @h = ('Host: localhost');
    push @h, "X-USER-ID: $o{user}" if defined $o{user};
    if (defined $body) {
        my $ct = exists $o{content_type} ? $o{content_type}
            : 'application/json';
        push @h, "Content-Type: $ct" if defined $ct;
        push @h, 'Content-Length: ' . length $body;
    } elsif ($method eq 'POST') {
        push @h, 'Content-Length: 0';
    }
    push @h, "$_: $o{headers}{$_}" for sort keys %{ $o{headers} // {} };
    push @h, 'Connection: close' unless $o{keepalive};
    return "$method $path HTTP/1.1\r\n" . join("\r\n", @h) . "\r\n\r\n"
        . ($body // '');
}

sub http_exchange {
    my ($host, $port, $bytes, $timeout) = @_;
    my $start = time;
    my $res = { status => 0, headers => {}, body => undef, json => undef };
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port,
        Proto => 'tcp', Timeout => $timeout);
    if (!$s) {
        $res->{error} = $!{ECONNREFUSED} ? 'refused' : "connect: $!";
        $res->{elapsed} = time - $start;
        return $res;
    }
    $s->blocking(0);
    my $sel = IO::Select->new($s);
    my $deadline = $start + $timeout;
    my $in = '';
    while (length $bytes) {
        my $left = $deadline - time;
        last if $left <= 0;
        next unless $sel->can_write($left);
        my $n = syswrite($s, $bytes);
        if (!defined $n) {
            next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            $res->{error} = "write: $!";
            last;
        }
        substr($bytes, 0, $n) = '';
    }
    while (!$res->{error}) {
        my $left = $deadline - time;
        if ($left <= 0) { $res->{error} = 'timeout'; last }
        next unless $sel->can_read($left);
        my $n = sysread($s, my $buf, 65536);
        if (!defined $n) {
            next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            $res->{error} = $!{ECONNRESET} ? 'reset' : "read: $!";
            last;
        }
        last if $n == 0;
        $in .= $buf;
        last if _complete($in);
    }
    close $s;
    my $p = _parse($in);
    if ($p) {
        $res = $p;              # answered, then closed (even with a reset)
    } else {
        $res->{error} //= 'closed without response';
    }
    $res->{elapsed} = time - $start;
    $res->{raw} = $in;
    return $res;
}

# one response out of raw bytes; undef without a status line
sub _parse {
    my ($in) = @_;
    return undef
        unless $in =~ m{\AHTTP/1\.[01] (\d{3})[^\r\n]*\r\n(.*?)\r\n\r\n}s;
    my $res = { status => 0 + $1, headers => {}, body => undef,
        json => undef, raw => $in };
    my $hl = $+[0];
    for (split /\r\n/, $2) {
        my ($k, $v) = split /:\s*/, $_, 2;
        $res->{headers}{ lc $k } = $v;
    }
    my $cl = $res->{headers}{'content-length'};
    if (_is_chunked($res->{headers})) {
        # decoded (t/pgsim answers chunked with its `chunked` setting);
        # the raw bytes stay in raw
        my ($body, $done) = _dechunk(substr($in, $hl));
        $res->{body} = $body // substr($in, $hl);
        $res->{chunked} = $done ? 1 : 'broken';
    } else {
        $res->{body} = defined $cl ? substr($in, $hl, $cl)
            : substr($in, $hl);
    }
    $res->{json} = eval { $JSON->decode($res->{body}) }
        if length $res->{body};
    return $res;
}

sub _complete {
    my ($in) = @_;
    my $e = index($in, "\r\n\r\n");
    return 0 if $e < 0;
    my $head = substr($in, 0, $e);
    if ($head =~ /\r\ntransfer-encoding:[ \t]*chunked[ \t]*(\r\n|\z)/i) {
        my ($body, $done) = _dechunk(substr($in, $e + 4));
        return !defined $body || $done;     # malformed: done reading too
    }
    my ($cl) = $head =~ /\r\ncontent-length:\s*(\d+)/i;
    return defined $cl && length($in) >= $e + 4 + $cl;
}

sub _is_chunked {
    my ($h) = @_;
    return ($h->{'transfer-encoding'} // '') =~ /\A\s*chunked\s*\z/i;
}

# the chunked transfer coding of $data: (body, 1) when complete, (body so
# far, 0) when more is needed, (undef) when malformed
sub _dechunk {
    my ($data) = @_;
    my $body = '';
    my $p = 0;
    while (1) {
        my $e = index($data, "\r\n", $p);
        return ($body, 0) if $e < 0;
        my ($size) = substr($data, $p, $e - $p)
            =~ /\A([0-9a-fA-F]{1,15})(?:[ \t]*;.*)?\z/ or return (undef);
        $size = hex $size;
        if ($size == 0) {
            # trailer fields up to the empty line
            my $q = $e + 2;
            while (1) {
                my $f = index($data, "\r\n", $q);
                return ($body, 0) if $f < 0;
                return ($body, 1) if $f == $q;
                $q = $f + 2;
            }
        }
        return ($body, 0) if length($data) < $e + 2 + $size + 2;
        return (undef) if substr($data, $e + 2 + $size, 2) ne "\r\n";
        $body .= substr($data, $e + 2, $size);
        $p = $e + 2 + $size + 2;
    }
}

# concurrent([ [ $method, $path, %opts ], ... ], timeout => 10): one
# connection per request, all opened at once, all written, then all read
# (the simulator must serve them side by side).  Returns the responses in
# order, as request() does.
sub concurrent {
    my ($self, $list, %o) = @_;
    my $timeout = $o{timeout} // 10;
    my $start = time;
    my (@st, %by);
    my ($rs, $ws) = (IO::Select->new, IO::Select->new);
    for my $q (@$list) {
        my ($method, $path, %ro) = @$q;
        my $st = { out => build_request($method, $path, %ro), in => '',
            res => { status => 0, headers => {} } };
        push @st, $st;
        my $port = $ro{port} // ($ro{control} ? $self->{control_port}
            : $self->{port});
        my $s = IO::Socket::INET->new(PeerAddr => $self->{host},
            PeerPort => $port, Proto => 'tcp', Blocking => 0);
        if (!$s) {
            $st->{res}{error} = "connect: $!";
            next;
        }
        $st->{sock} = $s;
        $by{ fileno $s } = $st;
        $ws->add($s);
        $rs->add($s);
    }
    while ($rs->count) {
        my $left = $start + $timeout - time;
        last if $left <= 0;
        my ($r, $w) = IO::Select->select($rs, $ws, undef,
            $left > 0.5 ? 0.5 : $left);
        for my $s (@{ $w // [] }) {
            my $st = $by{ fileno $s };
            my $n = syswrite($s, $st->{out});
            if (defined $n) {
                substr($st->{out}, 0, $n) = '';
                $ws->remove($s) unless length $st->{out};
            } elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR
                && $! != EINPROGRESS) {
                $st->{res}{error} = "write: $!";
                $ws->remove($s);
            }
        }
        for my $s (@{ $r // [] }) {
            my $st = $by{ fileno $s };
            my $n = sysread($s, my $buf, 65536);
            next if !defined $n && ($! == EAGAIN || $! == EWOULDBLOCK
                || $! == EINTR);
            $st->{in} .= $buf if $n;
            if (!$n || _complete($st->{in})) {
                $st->{res}{error} = $!{ECONNRESET} ? 'reset' : "read: $!"
                    if !defined $n;
                $st->{res}{elapsed} = time - $start;
                $rs->remove($s);
                $ws->remove($s);
                close $s;
            }
        }
    }
    my @out;
    for my $st (@st) {
        if ($st->{sock} && $rs->exists($st->{sock})) {
            $st->{res}{error} //= 'timeout';
            close $st->{sock};
        }
        my $res = _parse($st->{in}) // $st->{res};
        $res->{error} //= $st->{res}{error} unless $res->{status};
        $res->{elapsed} = $st->{res}{elapsed} // time - $start;
        push @out, $res;
    }
    return @out;
}

sub _control_req {
    my ($self, $method, $path, $body) = @_;
    my $r = $self->request($method, $path, control => 1,
        (defined $body ? (body => $body) : ()));
    croak "PgSim: $method $path: " . ($r->{status} ? "$r->{status} "
        . ($r->{body} // '') : $r->{error} // 'no response')
        unless $r->{status} == 200;
    return $r->{json};
}

# control({...}) or control(key => value, ...): merges settings; returns the
# settings now in force.  Croaks on a rejected setting.
sub control {
    my ($self, @kv) = @_;
    my $h = @kv == 1 && ref $kv[0] eq 'HASH' ? $kv[0] : {@kv};
    my %c = map { _camel($_) => $h->{$_} } keys %$h;
    return $self->_control_req('POST', '/__control', \%c);
}

sub settings { $_[0]->_control_req('GET', '/__control') }
sub counters { $_[0]->_control_req('GET', '/__counters') }
sub reset { $_[0]->_control_req('POST', '/__reset', {}) }

# transactions(orderId => ..., userId => ..., status => ...): all the
# simulator holds, oldest first, each with userId, callbackUrl, createdAt,
# decidedAt and callbacks [{ at, status | error | dropped, ms, signature }].
sub transactions {
    my ($self, %f) = @_;
    my $q = join '&', map { "$_=" . _uri($f{$_}) } sort keys %f;
    return $self->_control_req('GET', '/__transactions'
        . ($q ? "?$q" : ''))->{transactions};
}

sub _uri {
    my ($s) = @_;
    utf8::encode($s) if utf8::is_utf8($s);
    $s =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

# wait_counters(sub { $_[0]{callbacks_sent} >= 2 }, timeout => 5): polls the
# counters until the condition holds; returns the last counters if it did,
# undef otherwise.
sub wait_counters {
    my ($self, $cond, %o) = @_;
    my $deadline = time + ($o{timeout} // 10);
    while (1) {
        my $c = $self->counters;
        return $c if $cond->($c);
        return undef if time > $deadline;
        sleep($o{interval} // 0.05);
    }
}

sub alive {
    my ($self) = @_;
    return 0 unless $self->{pid};
    return 0 if waitpid($self->{pid}, WNOHANG) == $self->{pid};
    return kill(0, $self->{pid}) ? 1 : 0;
}

# stop: SIGTERM, then SIGKILL after 5 s; reaps the process.
sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    return unless $self->{owner} == $$;
    delete $LIVE{$pid};
    kill 'TERM', $pid;
    my $deadline = time + 5;
    while (waitpid($pid, WNOHANG) == 0) {
        if (time > $deadline) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
            last;
        }
        sleep 0.02;
    }
    return 1;
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $!, $@);
    $self->stop if $self->{pid} && $self->{owner} == $$;
}

END {
    local $?;
    $_->stop for grep { $_->{owner} == $$ } values %LIVE;
}

1;
