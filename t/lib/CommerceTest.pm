package CommerceTest;

# Test harness for ngx_commerce (core Perl only), in the spirit of
# nginx-tests' Test::Nginx: a temporary prefix, free loopback ports held by
# lock sockets, Postgres and nginx started as child processes in the
# foreground, and at the end a check that the error logs hold no alert,
# crit, emerg or sanitizer line.  See t/README.md for the full API.
#
#   use lib 't/lib';
#   use CommerceTest;
#
#   my $t = CommerceTest->new;
#   $t->start_pg;
#   $t->load_demo;
#   $t->write_config($t->default_config(http_extra => 'commerce_charge_max 500;'));
#   $t->start_nginx;
#   my $r = $t->get('/api/v1/balance', user => 1);
#   is_response($r, 200, { userId => 1, balance => 100000 }, 'balance');
#   $t->done;

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Errno qw(EAGAIN EINPROGRESS EWOULDBLOCK EINTR);
use Exporter 'import';
use File::Basename qw(dirname);
use File::Path qw(rmtree mkpath);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Scalar::Util qw(blessed looks_like_number);
use Socket qw(SOL_SOCKET SO_LINGER);
use Test::More;
use Time::HiRes qw(time sleep);
use B ();
use Compress::Zlib ();

use CommerceTest::JWT qw(jwt_mint jwt_encode random_secret);

our @EXPORT = qw(is_response is_error cmp_json json_num wait_until tally
    iso_in);

our $ROOT = abs_path(dirname(__FILE__) . '/../..');
our $PGBIN = $ENV{COMMERCE_PGBIN} // '/usr/lib/postgresql/15/bin';
our $NGINX = $ENV{COMMERCE_NGINX} // '/usr/sbin/nginx';
our $JSON = JSON::PP->new->canonical->utf8->allow_nonref;

my @INSTANCES;          # every live harness, for END

# worker_rlimit_nofile of the default config: within the hard limit, or
# setrlimit fails with an [alert] in the log
our $NOFILE = do {
    my $h = `sh -c 'ulimit -Hn' 2>/dev/null` // '';
    chomp $h;
    $h =~ /^\d+$/ && $h < 16384 ? $h : 16384;
};

# a server answering early (413) must not kill the test with SIGPIPE
$SIG{PIPE} = 'IGNORE';
my %PORT_LOCKS;         # port => UDP lock socket (whole process)


# ---------------------------------------------------------------------------
# construction, paths, ports

sub new {
    my ($class, %opts) = @_;

    my $self = bless {
        nginx   => {},          # name => { prefix, port, conf, pid, ... }
        pg      => undef,
        secret  => random_secret(32),
        allow   => [],
        stopped => 0,
        owner   => $$,
    }, $class;

    $self->{module} = $ENV{COMMERCE_MODULE}
        // "$ROOT/build/objs/ngx_http_commerce_module.so";
    $self->{module} = "$ROOT/$self->{module}" if $self->{module} !~ m{^/};

    unless ($opts{no_module}) {
        if (!-f $self->{module}) {
            fail("nginx module $self->{module} exists");
            diag("the commerce module is not built: run `make build` first"
                . " (or set COMMERCE_MODULE to the .so to test)");
            done_testing();
            exit 1;
        }
    }

    # a shared parent harness: reuse its Postgres (two nginx in one DB)
    if (my $p = $opts{share_pg}) {
        $self->{pg} = $p->{pg};
        $self->{pg_shared} = 1;
    }

    my $base = $ENV{COMMERCE_TEST_TMPDIR} // $ENV{TMPDIR} // '/tmp';
    $self->{dir} = tempdir('commerce-test-XXXXXX', DIR => $base,
        CLEANUP => 0);
    chmod 0755, $self->{dir};

    # the secret also as a file, for commerce_jwt_secret_file (owner only:
    # nginx refuses a secret others may read)
    chmod 0600, $self->write_file('jwt.secret', $self->{secret});

    push @INSTANCES, $self;
    return $self;
}

sub dir { $_[0]{dir} }
sub secret { $_[0]{secret} }
sub module { $_[0]{module} }
sub root { $ROOT }
sub secret_file { "$_[0]{dir}/jwt.secret" }

sub write_file {
    my ($self, $name, $content) = @_;
    my $path = $name =~ m{^/} ? $name : "$self->{dir}/$name";
    mkpath(dirname($path));
    open my $fh, '>', $path or croak "write $path: $!";
    print $fh $content;
    close $fh;
    return $path;
}

sub read_file {
    my ($self, $name) = @_;
    my $path = $name =~ m{^/} ? $name : "$self->{dir}/$name";
    open my $fh, '<', $path or return '';
    local $/;
    my $c = <$fh>;
    close $fh;
    return $c;
}

# A free TCP port on 127.0.0.1, held against other test processes by a UDP
# socket bound to the same number (nginx-tests' trick), so `prove -j` runs
# never pick the same port.  Chosen below the kernel's ephemeral range so
# client sockets of a busy test cannot take it meanwhile.
sub free_port {
    my ($self) = @_;
    for (1 .. 200) {
        my $port = 20000 + int(rand(12000));
        next if $PORT_LOCKS{$port};
        my $lock = IO::Socket::INET->new(
            Proto     => 'udp',
            LocalAddr => "127.0.0.1:$port",
        ) or next;
        my $probe = IO::Socket::INET->new(
            Proto     => 'tcp',
            LocalAddr => "127.0.0.1:$port",
            Listen    => 1,
            ReuseAddr => 1,
        ) or next;
        close $probe;
        $PORT_LOCKS{$port} = $lock;
        return $port;
    }
    croak "no free port found";
}

# A named extra port (for later services: Redis, simulators ...).
sub port {
    my ($self, $key) = @_;
    $key //= 'main';
    return $self->_nginx($key)->{port} if $self->{nginx}{$key};
    return $self->{ports}{$key} //= $self->free_port;
}


# ---------------------------------------------------------------------------
# process helpers

sub _am_root { $> == 0 }

# run(\@cmd, stdin => $text, as_pg => 1, env => {...}, timeout => s)
# Returns (exit_code, output) with stderr merged into output.
sub run {
    my ($self, $cmd, %o) = @_;
    my @cmd = @$cmd;
    unshift @cmd, 'runuser', '-u', 'postgres', '--'
        if $o{as_pg} && _am_root();

    pipe(my $rd, my $wr) or croak "pipe: $!";
    my $in;
    if (defined $o{stdin}) {
        $in = File::Temp->new(DIR => $self->{dir});
        my $text = $o{stdin};
        utf8::encode($text) if utf8::is_utf8($text);
        print $in $text;
        close $in;
        chmod 0644, "$in";
    }
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        close $rd;
        open STDOUT, '>&', $wr;
        open STDERR, '>&', $wr;
        if (defined $in) { open STDIN, '<', "$in" } else {
            open STDIN, '<', '/dev/null' }
        %ENV = (%ENV, %{ $o{env} }) if $o{env};
        chdir($o{cwd} // ($o{as_pg} ? '/' : '.'));
        exec @cmd or POSIX::_exit(127);
    }
    close $wr;
    my $out = '';
    my $deadline = time + ($o{timeout} // 120);
    my $sel = IO::Select->new($rd);
    while (1) {
        my $left = $deadline - time;
        if ($left <= 0) {
            kill 'KILL', $pid;
            $out .= "\n[killed after timeout]\n";
            last;
        }
        next unless $sel->can_read($left > 1 ? 1 : $left);
        my $n = sysread($rd, my $buf, 65536);
        last unless $n;
        $out .= $buf;
    }
    close $rd;
    waitpid($pid, 0);
    return ($? >> 8 | ($? & 127 ? 128 + ($? & 127) : 0), $out);
}

sub _run_ok {
    my ($self, $cmd, %o) = @_;
    my ($rc, $out) = $self->run($cmd, %o);
    croak "command failed ($rc): @$cmd\n$out" if $rc != 0;
    return $out;
}

sub _spawn {
    my ($self, $cmd, %o) = @_;
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        setpgrp(0, 0);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $o{log} // '/dev/null';
        open STDERR, '>&', \*STDOUT;
        %ENV = (%ENV, %{ $o{env} }) if $o{env};
        exec @$cmd or POSIX::_exit(127);
    }
    return $pid;
}

sub _alive {
    my ($pid) = @_;
    return 0 unless $pid;
    my $r = waitpid($pid, WNOHANG);
    return 0 if $r == $pid || $r == -1;
    return kill(0, $pid) ? 1 : 0;
}

# wait_until(sub { ... }, timeout => 10, interval => 0.1): true if the
# condition became true in time.
sub wait_until {
    my ($cond, %o) = @_;
    my $deadline = time + ($o{timeout} // 10);
    while (1) {
        my $v = $cond->();
        return $v if $v;
        return 0 if time > $deadline;
        sleep($o{interval} // 0.1);
    }
}

# tally(@responses): { "status" or "status CODE" (the JSON error code), with
# " (error)" when the client saw no answer => count }, to compare a burst's
# outcomes exactly: is_deeply(tally(@res), { 201 => 100, '409 X' => 900 })
sub tally {
    my %n;
    for my $r (@_) {
        my $k = $r->{status} . ($r->{json} && $r->{json}{code}
            ? " $r->{json}{code}" : '');
        $k .= " ($r->{error})" if $r->{error};
        $n{$k}++;
    }
    return \%n;
}

# iso_in($seconds): the UTC time that many seconds from now (negative: ago),
# as the API takes it: 2024-05-01T12:00:00Z
sub iso_in {
    my @g = gmtime(time + $_[0]);
    return sprintf '%04d-%02d-%02dT%02d:%02d:%02dZ', $g[5] + 1900, $g[4] + 1,
        @g[3, 2, 1, 0];
}


# ---------------------------------------------------------------------------
# Postgres

sub start_pg {
    my ($self, %o) = @_;
    croak "start_pg: this harness shares another's Postgres"
        if $self->{pg_shared};

    my $pgdir = "$self->{dir}/pg";
    mkpath($pgdir);
    chmod 0700, $pgdir;
    if (_am_root()) {
        my (undef, undef, $uid, $gid) = getpwnam('postgres')
            or croak "no postgres user";
        chown $uid, $gid, $pgdir;
    }

    my $pg = $self->{pg} = {
        dir     => $pgdir,
        data    => "$pgdir/data",
        port    => $self->free_port,
        log     => "$pgdir/postgres.log",
        options => $o{options} // [],
    };

    $self->_run_ok([ "$PGBIN/initdb", '-D', $pg->{data}, '-A', 'trust',
        '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync',
        '--no-instructions' ], as_pg => 1, timeout => 120);

    $self->_pg_start;
    $self->_run_ok([ "$PGBIN/createdb", '-h', '127.0.0.1',
        '-p', $pg->{port}, '-U', 'postgres', 'commerce' ]);
    $self->migrate unless $o{no_migrate};
    return $self;
}

sub _pg_start {
    my ($self) = @_;
    my $pg = $self->{pg};
    my @opts = (
        "-p $pg->{port}",
        "-k $pg->{dir}",
        '-c listen_addresses=127.0.0.1',
        '-c fsync=off',
        '-c synchronous_commit=off',
        '-c full_page_writes=off',
        '-c max_connections=300',
        '-c shared_buffers=64MB',
        '-c log_min_messages=warning',
        '-c log_lock_waits=on',
        '-c deadlock_timeout=200ms',
        @{ $pg->{options} },
    );
    $self->_run_ok([ "$PGBIN/pg_ctl", '-D', $pg->{data}, '-l', $pg->{log},
        '-o', join(' ', @opts), '-w', '-t', '60', 'start' ],
        as_pg => 1, timeout => 90);
    $pg->{running} = 1;
}

sub stop_pg {
    my ($self, %o) = @_;
    my $pg = $self->{pg} or return;
    return unless $pg->{running};
    my $mode = $o{mode} // 'fast';
    $self->run([ "$PGBIN/pg_ctl", '-D', $pg->{data}, '-m', $mode, '-w',
        '-t', '60', 'stop' ], as_pg => 1, timeout => 90);
    $pg->{running} = 0;
}

sub restart_pg {
    my ($self, %o) = @_;
    $self->stop_pg(%o);
    $self->_pg_start;
}

sub start_pg_again { $_[0]->_pg_start }

sub pg_port { $_[0]{pg}{port} }
sub pg_socket_dir { $_[0]{pg}{dir} }

sub pg_conninfo {
    my ($self) = @_;
    croak "Postgres not started" unless $self->{pg};
    return "host=127.0.0.1 port=$self->{pg}{port} dbname=commerce"
        . " user=postgres";
}

sub migrate {
    my ($self) = @_;
    return $self->_run_ok([ "$ROOT/sql/migrate", $self->pg_conninfo ],
        timeout => 120);
}

sub load_demo {
    my ($self) = @_;
    return $self->_run_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1',
        '-f', "$ROOT/sql/demo.sql", $self->pg_conninfo ], timeout => 120);
}

# bench_shop($orders): the demo as a bench wants it: balances and stock
# that last the whole bench, then $orders orders (none when 0) (1 unit of a random
# product, paid by balance: t/bench/minimal_order_pay.sql through pgbench)
# and VACUUM ANALYZE.  A shop has orders: on empty order tables, the
# plans a session keeps (prepared statements, plpgsql, foreign keys)
# scan them sequentially, and those scans grow with every order a bench
# row makes until autovacuum analyzes the tables (issue 14).
sub bench_shop {
    my ($self, $orders) = @_;
    $self->psql('UPDATE users SET balance = 100000000000;
                 UPDATE products SET stock = 1000000000;
                 UPDATE product_variants SET stock = 1000000000;
                 VACUUM ANALYZE;');
    if ($orders) {
        $self->_run_ok([ "$PGBIN/pgbench", '-n', '-M', 'prepared', '-c', 4, '-j', 2,
            '-t', int(($orders + 3) / 4), '-f', "$ROOT/t/bench/minimal_order_pay.sql",
            '-h', '127.0.0.1', '-p', $self->pg_port, '-U', 'postgres', 'commerce' ],
            timeout => 300);
        $self->psql('VACUUM ANALYZE');
    }
}

# psql($sql): runs the statements; returns the rows (psql -XAt, fields
# separated by '|') as a list, or in scalar context the output chomped.
# Dies with psql's message on error.
sub psql {
    my ($self, $sql, %o) = @_;
    my ($rc, $out) = $self->run([ 'psql', '-X', '-A', '-t', '-q',
        '-v', 'ON_ERROR_STOP=1', '-f', '-', $self->pg_conninfo ],
        stdin => $sql, timeout => $o{timeout} // 60);
    croak "psql failed ($rc): $out\nSQL: $sql" if $rc != 0;
    chomp $out;
    return wantarray ? split(/\n/, $out) : $out;
}

# psql_bg($sql): runs psql in the background (e.g. to hold a row lock);
# returns a handle for psql_wait.  Output goes to a file in the test dir.
sub psql_bg {
    my ($self, $sql) = @_;
    my $n = ++$self->{bg_seq};
    my $file = $self->write_file("psql-bg-$n.sql", $sql);
    my $log = "$self->{dir}/psql-bg-$n.log";
    my $pid = $self->_spawn([ 'psql', '-X', '-A', '-t', '-q',
        '-v', 'ON_ERROR_STOP=1', '-f', $file, $self->pg_conninfo ],
        log => $log);
    my $h = { pid => $pid, log => $log };
    push @{ $self->{bg} }, $h;
    return $h;
}

sub psql_wait {
    my ($self, $h, %o) = @_;
    my $ok = wait_until(sub { !_alive($h->{pid}) },
        timeout => $o{timeout} // 30);
    kill 'KILL', $h->{pid} unless $ok;
    return $self->read_file($h->{log});
}

# psql_json($sql): the single value of a query returning json, decoded
# (numbers stay numbers); undef for SQL NULL.
sub psql_json {
    my ($self, $sql) = @_;
    my $out = $self->psql($sql);
    return undef if $out eq '';
    return $JSON->decode($out);
}

# A digest of every table (count and md5 of the sorted rows), to show that
# a rejected request changed nothing.
sub db_state {
    my ($self, %o) = @_;
    my @tables = $self->psql(q{SELECT table_name FROM information_schema.tables
        WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
          AND table_name NOT IN ('schema_migrations', 'schema_repeatables')
        ORDER BY 1});
    my %skip = map { $_ => 1 } @{ $o{skip} // [] };
    @tables = grep { !$skip{$_} } @tables;
    my $sql = join " UNION ALL\n", map {
        qq{SELECT '$_', count(*), coalesce(md5(string_agg(t::text, ','
             ORDER BY t::text)), '') FROM "$_" t}
    } @tables;
    my %state;
    for ($self->psql($sql)) {
        my ($t, $n, $md5) = split /\|/;
        $state{$t} = "$n:$md5";
    }
    return \%state;
}

# Check the invariants that hold between tables whatever happened:
# stock + quantities of live (not cancelled) orders = initial stock is the
# test's business; here: every order has items, amounts add up, at most one
# successful payment, PAID orders have one, balances match the ledger.
sub check_consistency {
    my ($self, $name) = @_;
    $name //= 'database consistent';
    my @bad = $self->psql(<<'SQL');
SELECT 'order without items: ' || o.id FROM orders o
 WHERE NOT EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id)
UNION ALL
SELECT 'order total mismatch: ' || o.id FROM orders o
 WHERE o.total_amount <> (SELECT sum(amount) FROM order_items i
                           WHERE i.order_id = o.id)
UNION ALL
SELECT 'paid order without successful payments adding up: ' || o.id FROM orders o
 WHERE o.status = 'PAID' AND o.payment_amount > 0
   AND o.payment_amount IS DISTINCT FROM (SELECT sum(p.amount) FROM payments p
       WHERE p.order_id = o.id AND p.status = 'SUCCESS' AND p.net_cancel IS NULL)
UNION ALL
SELECT 'order paid twice: ' || p.order_id FROM payments p
 WHERE p.status = 'SUCCESS' GROUP BY p.order_id, p.method HAVING count(*) > 1
UNION ALL
SELECT 'unpaid order with successful payment: ' || o.id FROM orders o
 WHERE o.status <> 'PAID' AND EXISTS (SELECT 1 FROM payments p
       WHERE p.order_id = o.id AND p.status = 'SUCCESS'
         AND NOT (p.method = 'POINTS' AND o.status = 'PAYMENT_IN_PROGRESS'))
UNION ALL
SELECT 'points payment without its ledger rows: ' || p.id FROM payments p
 WHERE p.method = 'POINTS' AND p.status IN ('SUCCESS', 'CANCELLED')
   AND (SELECT coalesce(sum(-l.amount), 0) FROM points_ledger l
         WHERE l.order_id = p.order_id AND l.kind = 'SPEND')
       <> p.amount
UNION ALL
SELECT 'points part given back without RESTORE: ' || p.id FROM payments p
 WHERE p.method = 'POINTS' AND p.status = 'CANCELLED'
   AND NOT EXISTS (SELECT 1 FROM points_ledger l
       WHERE l.order_id = p.order_id AND l.kind = 'RESTORE' AND l.amount = p.amount)
UNION ALL
SELECT 'balance payment without ledger row: ' || p.id FROM payments p
 WHERE p.method = 'BALANCE' AND p.status = 'SUCCESS'
   AND NOT EXISTS (SELECT 1 FROM balance_ledger l
       WHERE l.order_id = p.order_id AND l.kind = 'PAYMENT'
         AND l.amount = -p.amount)
UNION ALL
SELECT 'balance differs from last ledger row: user ' || u.id FROM users u
 JOIN LATERAL (SELECT balance_after FROM balance_ledger l
                WHERE l.user_id = u.id ORDER BY id DESC LIMIT 1) l ON true
 WHERE l.balance_after <> u.balance
UNION ALL
SELECT 'points differ from the ledger: user ' || u.id FROM users u
 LEFT JOIN LATERAL (SELECT sum(amount) AS total,
                           (array_agg(points_after ORDER BY id DESC))[1] AS last
                      FROM points_ledger l WHERE l.user_id = u.id) l ON true
 WHERE u.points <> coalesce(l.total, 0) OR u.points <> coalesce(l.last, 0)
SQL
    ok(!@bad, $name) or diag(join "\n", @bad);
    my $sales = $self->check_sales("$name: best-seller sales");
    my $stock = $self->check_stock("$name: stock ledger");
    return !@bad && $sales && $stock;
}

# check_stock($name): every variant's stock is the sum of its ledger's
# deltas and its last row's stock_after (stock_movements, written by the
# variants' trigger whoever changes stock), and every product holds the
# sum of its variants' stock and the count of those ON_SALE, as a test
sub check_stock {
    my ($self, $name) = @_;
    $name //= 'stock = its ledger; products hold their variants\' sums';
    my @bad = $self->psql(<<'SQL');
SELECT 'variant ' || v.id || ': stock ' || v.stock || ', ledger sum '
       || coalesce(l.s::text, '-') || ', last ' || coalesce(l.last::text, '-')
  FROM product_variants v
  LEFT JOIN LATERAL (SELECT sum(m.delta) AS s,
                            (SELECT m2.stock_after FROM stock_movements m2
                              WHERE m2.variant_id = v.id
                              ORDER BY m2.id DESC LIMIT 1) AS last
                       FROM stock_movements m WHERE m.variant_id = v.id) l ON true
 WHERE l.s IS DISTINCT FROM v.stock OR l.last IS DISTINCT FROM v.stock
UNION ALL
SELECT 'product ' || p.id || ': stock ' || p.stock || ', on sale '
       || p.on_sale_variants
  FROM products p
 WHERE p.stock IS DISTINCT FROM (SELECT sum(v.stock) FROM product_variants v
                                  WHERE v.product_id = p.id)
    OR p.on_sale_variants <> (SELECT count(*) FROM product_variants v
                               WHERE v.product_id = p.id AND v.status = 'ON_SALE')
SQL
    ok(!@bad, $name) or diag(join "\n", @bad[0 .. ($#bad > 20 ? 20 : $#bad)]);
    return !@bad;
}

# check_sales($name): product_sales_daily is exactly the items of the PAID
# orders by calendar day of paid_at in Asia/Seoul (rows at 0 aside), as a
# test
sub check_sales {
    my ($self, $name) = @_;
    $name //= 'best-seller sales = PAID orders by Seoul day';
    my @bad = $self->psql(<<'SQL');
WITH want AS (
    SELECT (o.paid_at AT TIME ZONE 'Asia/Seoul')::date AS day, i.product_id,
           sum(i.quantity) AS quantity, sum(i.amount) AS revenue
      FROM orders o JOIN order_items i ON i.order_id = o.id
     WHERE o.status = 'PAID'
     GROUP BY 1, 2
), have AS (
    SELECT day, product_id, quantity, revenue FROM product_sales_daily
     WHERE quantity <> 0 OR revenue <> 0
)
SELECT coalesce(w.day, h.day) || ' product ' || coalesce(w.product_id, h.product_id)
       || ': orders ' || coalesce(w.quantity || '/' || w.revenue, '-')
       || ', aggregate ' || coalesce(h.quantity || '/' || h.revenue, '-')
  FROM want w FULL JOIN have h USING (day, product_id)
 WHERE w.quantity IS DISTINCT FROM h.quantity
    OR w.revenue IS DISTINCT FROM h.revenue
SQL
    ok(!@bad, $name) or diag(join "\n", @bad);
    return !@bad;
}


# ---------------------------------------------------------------------------
# Redis

# start_redis(password => 'pw', options => ['--maxmemory', '10mb']): a
# redis-server in the foreground on port('redis') (a free loopback port,
# kept across restarts), no persistence, its log in redis/redis.log.
# %%REDIS%% in a config is its address (127.0.0.1:port).
sub start_redis {
    my ($self, %o) = @_;
    my $dir = "$self->{dir}/redis";
    mkpath($dir);
    my $r = $self->{redis} //= {
        dir      => $dir,
        port     => $self->port('redis'),
        log      => "$dir/redis.log",
        password => $o{password},
        options  => $o{options} // [],
    };
    croak "redis already running" if _alive($r->{pid});
    my @cmd = ('redis-server', '--port', $r->{port}, '--bind', '127.0.0.1',
        '--dir', $dir, '--save', '', '--appendonly', 'no',
        '--daemonize', 'no', '--logfile', '', '--loglevel', 'warning',
        (defined $r->{password} ? ('--requirepass', $r->{password}) : ()),
        @{ $r->{options} });
    $r->{pid} = $self->_spawn(\@cmd, log => $r->{log});
    my $up = wait_until(sub {
        return -1 unless _alive($r->{pid});
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $r->{port}, Proto => 'tcp', Timeout => 1) or return 0;
        close $s;
        return 1;
    }, timeout => 20, interval => 0.05);
    croak "redis-server did not come up:\n" . $self->read_file($r->{log})
        if $up != 1;
    return $self;
}

# stop_redis(signal => 'KILL'|'TERM'|'STOP'): stops (or with STOP,
# freezes) the server; start_redis() again restarts it on the same port.
sub stop_redis {
    my ($self, %o) = @_;
    my $r = $self->{redis} or return;
    my $sig = $o{signal} // 'TERM';
    return unless _alive($r->{pid});
    kill $sig, $r->{pid};
    return if $sig eq 'STOP';
    wait_until(sub { !_alive($r->{pid}) }, timeout => 10)
        or kill 'KILL', $r->{pid};
    wait_until(sub { !_alive($r->{pid}) }, timeout => 5);
    $r->{pid} = undef;
}

# continue_redis: SIGCONT after stop_redis(signal => 'STOP')
sub continue_redis {
    my ($self) = @_;
    my $r = $self->{redis} or return;
    kill 'CONT', $r->{pid} if $r->{pid};
}

sub redis_port { $_[0]{redis} ? $_[0]{redis}{port} : $_[0]->port('redis') }
sub redis_addr { '127.0.0.1:' . $_[0]->redis_port }

# redis_cli(@args): redis-cli's output (chomped), authenticated when the
# server has a password
sub redis_cli {
    my ($self, @args) = @_;
    my $r = $self->{redis} or croak "Redis not started";
    my ($rc, $out) = $self->run([ 'redis-cli', '-h', '127.0.0.1',
        '-p', $r->{port}, '--no-auth-warning',
        (defined $r->{password} ? ('-a', $r->{password}) : ()), @args ],
        timeout => 30);
    chomp $out;
    return $out;
}


# ---------------------------------------------------------------------------
# nginx

sub _nginx {
    my ($self, $name) = @_;
    $name //= 'main';
    return $self->{nginx}{$name} //= do {
        my $prefix = $name eq 'main' ? $self->{dir} : "$self->{dir}/$name";
        mkpath($prefix);
        chmod 0755, $prefix;
        { name => $name, prefix => $prefix, port => $self->free_port };
    };
}

sub nginx_port { $_[0]->_nginx($_[1])->{port} }
sub nginx_prefix { $_[0]->_nginx($_[1])->{prefix} }
sub error_log { $_[0]->_nginx($_[1])->{prefix} . '/error.log' }

# The default full configuration; every part can be extended:
#   main_extra (main context), events_extra, http_extra, server_extra,
#   location_extra (inside location /api/v1/), workers (2),
#   secret_file => 1 (commerce_jwt_secret_file instead of the secret),
#   no_secret => 1, no_conninfo => 1, conninfo => '...',
#   access_log => 'off', log_level => 'warn', worker_connections => 4096,
#   listen_extra => 'reuseport' (more parameters of the listen directive),
#   nofile => worker_rlimit_nofile (default: 16384 or the hard limit).
sub default_config {
    my ($self, %o) = @_;
    my $workers = $o{workers} // 2;
    my $secret = $o{no_secret} ? ''
        : $o{secret_file} ? 'commerce_jwt_secret_file %%SECRET_FILE%%;'
        : 'commerce_jwt_secret "%%SECRET%%";';
    my $conninfo = $o{no_conninfo} ? ''
        : 'commerce_pg_conninfo "' . ($o{conninfo} // '%%PGCONNINFO%%')
            . '"; commerce_openapi "' . "$ROOT/conf/openapi.json" . '";';
    my $main = $o{main_extra} // '';
    my $events = $o{events_extra} // '';
    my $http = $o{http_extra} // '';
    my $server = $o{server_extra} // '';
    my $loc = $o{location_extra} // '';
    my $listen = $o{listen_extra} // '';
    my $redis = defined $o{redis}
        ? "commerce_redis %%REDIS%% $o{redis};" : '';
    my $access = $o{access_log} // '%%TESTDIR%%/access.log';
    my $level = $o{log_level} // 'info';
    my $wc = $o{worker_connections} // 4096;
    my $nofile = $o{nofile} // $NOFILE;

    return <<"EOF";
load_module %%MODULE%%;
%%USER%%
worker_processes $workers;
worker_rlimit_nofile $nofile;
daemon off;
master_process on;
pid %%TESTDIR%%/nginx.pid;
error_log %%TESTDIR%%/error.log $level;
$main

events {
    worker_connections $wc;
    $events
}

http {
    access_log $access;
    client_body_temp_path %%TESTDIR%%/client_body_temp;
    proxy_temp_path %%TESTDIR%%/proxy_temp;
    fastcgi_temp_path %%TESTDIR%%/fastcgi_temp;
    uwsgi_temp_path %%TESTDIR%%/uwsgi_temp;
    scgi_temp_path %%TESTDIR%%/scgi_temp;
    client_body_buffer_size 64k;
    client_max_body_size 2m;
    keepalive_requests 100000;

    $conninfo
    $secret
    $redis
    $http

    server {
        listen 127.0.0.1:%%PORT%% backlog=4096 $listen;
        $server

        location /api/v1/ {
            commerce_api;
            $loc
        }
    }
}
EOF
}

sub _render {
    my ($self, $text, $inst) = @_;
    my %v = (
        MODULE      => $self->{module},
        PORT        => $inst->{port},
        TESTDIR     => $inst->{prefix},
        BASEDIR     => $self->{dir},
        SECRET      => $self->{secret},
        SECRET_FILE => $self->secret_file,
        USER        => _am_root() ? 'user root;' : '',
        PGCONNINFO  => $self->{pg} ? $self->pg_conninfo : 'PG-NOT-STARTED',
        PGPORT      => $self->{pg} ? $self->{pg}{port} : 0,
        PGSOCKET    => $self->{pg} ? $self->{pg}{dir} : '',
        REDIS       => $self->redis_addr,
    );
    $text =~ s{%%PORT_(\w+)%%}{$self->port($1)}ge;
    $text =~ s{%%(\w+)%%}{
        exists $v{$1} ? $v{$1} : croak "unknown placeholder %%$1%%"
    }ge;
    return $text;
}

# write_config($text, name => 'b'): renders the placeholders and writes the
# instance's nginx.conf.  Without a text, the default configuration.
sub write_config {
    my ($self, $text, %o) = @_;
    my $inst = $self->_nginx($o{name});
    $text //= $self->default_config;
    $inst->{template} = $text;
    my $conf = $self->_render($text, $inst);
    $self->write_file("$inst->{prefix}/nginx.conf", $conf);
    return $conf;
}

# nginx_t($config_text): `nginx -t` on a config in a scratch prefix;
# returns (exit_code, output).
sub nginx_t {
    my ($self, $text) = @_;
    my $name = 'check' . ++$self->{check_seq};
    my $inst = $self->_nginx($name);
    $self->write_config($text, name => $name);
    my ($rc, $out) = $self->run([ $NGINX, '-t', '-q', '-p', "$inst->{prefix}/",
        '-e', "$inst->{prefix}/startup.log",
        '-c', "$inst->{prefix}/nginx.conf" ], env => $self->_nginx_env,
        timeout => 60);
    delete $self->{nginx}{$name};
    return ($rc, $out);
}

sub _nginx_env {
    my ($self) = @_;
    my %env;
    $env{LD_PRELOAD} = $ENV{COMMERCE_NGINX_PRELOAD}
        if $ENV{COMMERCE_NGINX_PRELOAD};
    return \%env;
}

sub _slow { $ENV{COMMERCE_NGINX_PRELOAD} ? 3 : 1 }

# start_nginx(name => 'b'): starts the instance (writing the default config
# if none was written) and waits until its port accepts connections and its
# workers run.
sub start_nginx {
    my ($self, %o) = @_;
    my $inst = $self->_nginx($o{name});
    croak "nginx $inst->{name} already running" if _alive($inst->{pid});
    if (!defined $inst->{template}) {
        my $main = $self->{nginx}{main};
        $self->write_config($main && defined $main->{template}
            ? $main->{template} : undef, name => $inst->{name});
    }

    my $stderr = "$inst->{prefix}/stderr.log";
    $inst->{pid} = $self->_spawn([ $NGINX, '-p', "$inst->{prefix}/",
        '-e', "$inst->{prefix}/startup.log",
        '-c', "$inst->{prefix}/nginx.conf" ],
        log => $stderr, env => $self->_nginx_env);
    $inst->{started} = 1;

    my $up = wait_until(sub {
        return -1 unless _alive($inst->{pid});
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $inst->{port}, Proto => 'tcp', Timeout => 1)
            or return 0;
        close $s;
        return scalar($self->worker_pids($inst->{name})) > 0 ? 1 : 0;
    }, timeout => 20 * _slow(), interval => 0.05);

    if ($up != 1) {
        my $why = $up == -1 ? 'exited' : 'did not come up';
        croak "nginx $inst->{name} $why:\n"
            . $self->read_file($stderr)
            . $self->read_file("$inst->{prefix}/startup.log")
            . $self->read_file("$inst->{prefix}/error.log");
    }
    return $self;
}

sub nginx_pid { $_[0]->_nginx($_[1])->{pid} }

# Children of the master, as [pid, title]; in scalar context the count of
# live workers (not shutting down).
sub _children {
    my ($ppid) = @_;
    my @kids;
    opendir(my $d, '/proc') or return;
    for my $pid (grep { /^\d+$/ } readdir $d) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $stat = <$fh> // next;
        close $fh;
        $stat =~ /\)\s+\S+\s+(\d+)/ or next;
        next unless $1 == $ppid;
        my $cmd = '';
        if (open my $c, '<', "/proc/$pid/cmdline") {
            local $/;
            $cmd = <$c> // '';
            $cmd =~ s/\0+/ /g;
        }
        push @kids, [ $pid, $cmd ];
    }
    closedir $d;
    return @kids;
}

sub worker_pids {
    my ($self, $name, %o) = @_;
    my $inst = $self->_nginx($name);
    return unless _alive($inst->{pid});
    my @w = grep { $_->[1] =~ /worker process/ } _children($inst->{pid});
    @w = grep { $_->[1] !~ /shutting down/ } @w unless $o{all};
    return map { $_->[0] } @w;
}

# reload_nginx(name => ..., wait => 1): HUP the master; by default waits
# until a new generation of workers runs and returns the old workers' pids
# (for wait_pids_gone).
sub reload_nginx {
    my ($self, %o) = @_;
    my $inst = $self->_nginx($o{name});
    if (defined $o{config}) {
        $self->write_config($o{config}, name => $inst->{name});
    }
    my %old = map { $_ => 1 } $self->worker_pids($inst->{name});
    kill 'HUP', $inst->{pid} or croak "HUP nginx: $!";
    return keys %old if defined $o{wait} && !$o{wait};
    my $n = keys %old;
    wait_until(sub {
        my @new = grep { !$old{$_} } $self->worker_pids($inst->{name});
        @new >= $n;
    }, timeout => 20 * _slow(), interval => 0.05)
        or diag("reload: new workers did not appear in time");
    return keys %old;
}

sub pids_alive {
    my ($self, @pids) = @_;
    return grep { kill 0, $_ } @pids;
}

sub wait_pids_gone {
    my ($self, $pids, %o) = @_;
    return wait_until(sub { !$self->pids_alive(@$pids) },
        timeout => $o{timeout} // 15);
}

# stop_nginx(name => ...): graceful (QUIT); TERM/KILL if it hangs.  Returns
# true if it exited gracefully in time.
sub stop_nginx {
    my ($self, %o) = @_;
    my $inst = $self->_nginx($o{name});
    return 1 unless _alive($inst->{pid});
    my @kids = map { $_->[0] } _children($inst->{pid});
    kill $o{signal} // 'QUIT', $inst->{pid};
    my $graceful = wait_until(sub { !_alive($inst->{pid}) },
        timeout => $o{timeout} // 15 * _slow(), interval => 0.05);
    if (!$graceful) {
        diag("nginx $inst->{name} did not exit on QUIT; sending TERM");
        kill 'TERM', $inst->{pid};
        wait_until(sub { !_alive($inst->{pid}) }, timeout => 5)
            or kill 'KILL', $inst->{pid}, @kids;
        wait_until(sub { !_alive($inst->{pid}) }, timeout => 5);
    }
    # orphaned workers would hold the port
    kill 'KILL', $self->pids_alive(@kids)
        if wait_until(sub { !$self->pids_alive(@kids) }, timeout => 5) == 0;
    $inst->{pid} = undef;
    return $graceful;
}

# allow_log(qr/.../): error log lines matching are not counted as problems.
sub allow_log {
    my ($self, @re) = @_;
    push @{ $self->{allow} }, @re;
}

sub log_problems {
    my ($self, $name) = @_;
    my $inst = $self->_nginx($name);
    my @bad;
    for my $f (qw(error.log stderr.log startup.log)) {
        my $text = $self->read_file("$inst->{prefix}/$f");
        for my $line (split /\n/, $text) {
            next unless $line =~ /\[(alert|crit|emerg)\]|AddressSanitizer|
                runtime\ error:|LeakSanitizer|UndefinedBehaviorSanitizer|
                \bsegfault\b|exited\ on\ signal/x;
            next if grep { $line =~ $_ } @{ $self->{allow} };
            push @bad, "$f: $line";
        }
    }
    return @bad;
}

# grep_log(qr/re/, name => ...): matching lines of the instance's error.log
sub grep_log {
    my ($self, $re, %o) = @_;
    my $text = $self->read_file($self->error_log($o{name}));
    return grep { $_ =~ $re } split /\n/, $text;
}


# ---------------------------------------------------------------------------
# metrics and waits (card payment tests)

# metrics(name => instance, path => '/metrics'): the Prometheus text of a
# `commerce_metrics` location, parsed: { 'series{label="v",...}' => number }
# with the labels as served.  Croaks unless the scrape answers 200.
sub metrics {
    my ($self, %o) = @_;
    my $res = $self->get($o{path} // '/metrics', name => $o{name});
    croak "metrics: status $res->{status}" . ($res->{error}
        ? " ($res->{error})" : '') unless $res->{status} == 200;
    my %m;
    for my $line (split /\n/, $res->{body} // '') {
        next if $line =~ /^#/ || $line !~ /\S/;
        my ($series, $v) = $line =~ /^(\S+(?:\{[^}]*\})?)\s+(\S+)$/ or next;
        $m{$series} = 0 + $v;
    }
    return \%m;
}

# metric($metrics_or_undef, 'family', label => value, ...): one series'
# value out of metrics() (scraped now when the first argument is undef);
# 0 when the series is absent.  The labels must be all of the series'.
sub metric {
    my ($self, $m, $family, %labels) = @_;
    $m //= $self->metrics;
    my $want = join ',', map { "$_=\"$labels{$_}\"" } sort keys %labels;
    for my $series (keys %$m) {
        my ($f, $l) = $series =~ /^([^{]+)(?:\{(.*)\})?$/ or next;
        next unless $f eq $family;
        my $got = join ',', sort split /,(?=[a-z_]+=")/, $l // '';
        return $m->{$series} if $got eq $want;
    }
    return 0;
}

# wait_order($order_id, user => $id, until => sub { $order->{status} eq
# 'PAID' }, timeout => 10): polls GET /api/v1/orders/{id} until the
# condition holds on the decoded order; returns the last order (whether or
# not it held: compare it in the test).
sub wait_order {
    my ($self, $id, %o) = @_;
    my $until = $o{until} // sub { 1 };
    my $last;
    wait_until(sub {
        my $r = $self->get("/api/v1/orders/$id", user => $o{user},
            name => $o{name});
        $last = $r->{json} if $r->{status} == 200;
        return $last && $until->($last);
    }, timeout => $o{timeout} // 10, interval => $o{interval} // 0.1);
    return $last;
}


# ---------------------------------------------------------------------------
# coupons

# coupon_campaign(%fields): the body of a campaign issuing now (FIXED 1000,
# 100 coupons, one per user, from an hour ago to a day ahead, valid 7
# days), with the given fields instead
sub coupon_campaign {
    my ($self, %o) = @_;
    return { name => 'Coupon', discountType => 'FIXED', discountValue => 1000,
        totalQuantity => 100, perUserLimit => 1, issueStartsAt => iso_in(-3600),
        issueEndsAt => iso_in(86400), validDays => 7, %o };
}

# create_coupon(%fields): creates coupon_campaign(%fields) as an ADMIN
# (user 2) through main; its id.  Dies unless 201.
sub create_coupon {
    my ($self, %o) = @_;
    my $res = $self->post('/api/v1/admin/coupons', $self->coupon_campaign(%o),
        token => $self->token(2, role => 'ADMIN'));
    croak "create coupon: $res->{status} $res->{body}"
        unless $res->{status} == 201;
    return $res->{json}{id};
}

# issue_coupon($id, $user, name => instance): POST .../coupons/{id}/issue;
# issue_coupon_req: the same as a request of concurrent()
sub issue_coupon {
    my ($self, $id, $user, %o) = @_;
    return $self->post("/api/v1/coupons/$id/issue", '{}', user => $user, %o);
}

sub issue_coupon_req {
    my ($self, $id, $user, %o) = @_;
    return { method => 'POST', path => "/api/v1/coupons/$id/issue",
        body => '{}', user => $user, %o };
}

# coupon_rows($id): "rows|distinct users" of user_coupons for the campaign
sub coupon_rows {
    my ($self, $id) = @_;
    return scalar $self->psql("SELECT count(*) || '|' || count(DISTINCT
        user_id) FROM user_coupons WHERE campaign_id = $id");
}


# ---------------------------------------------------------------------------
# tokens

# token($user_id, role => , ttl => , exp => , secret => , sub_raw => )
sub token {
    my ($self, $user, %o) = @_;
    return jwt_mint(
        secret => $o{secret} // $self->{secret},
        (exists $o{sub_raw} ? (sub_raw => $o{sub_raw}) : (sub => $user)),
        map { exists $o{$_} ? ($_ => $o{$_}) : () } qw(role ttl exp iat extra),
    );
}

sub jwt { shift; return jwt_encode(@_) }

# account_keys(mode => 0600, iterations => 100000, jwt_kids => [1, 2],
# current => 2): writes the three key files of accounts (jwt.keys,
# pii.keys, pii-index.key: "<kid> <64 hex>" lines, the current one marked)
# with that mode and returns the http{} lines that use them.  The JWT keys
# are kept: jwt_key($kid) is the raw key of that kid, jwt_current_kid the
# signing one.  Accounts also need `thread_pool default threads=4;` in the
# main context (account_main).
sub account_keys {
    my ($self, %o) = @_;
    my $mode = $o{mode} // 0600;
    my @kids = @{ $o{jwt_kids} // [1, 2] };
    my $current = $o{current} // $kids[-1];
    my %jwt = map { $_ => random_secret(32) } @kids;
    $self->{jwt_keyring} = \%jwt;
    $self->{jwt_current_kid} = $current;
    my $ring = sub {
        my ($name, $keys, $cur) = @_;
        my $text = join '', map { "$_ $keys->{$_}"
            . ($_ == $cur ? ' current' : '') . "\n" } sort { $a <=> $b }
            keys %$keys;
        my $path = $self->write_file($name, $text);
        chmod $mode, $path;
        return $path;
    };
    my $jf = $ring->('jwt.keys', \%jwt, $current);
    my $pf = $ring->('pii.keys', { 1 => random_secret(32),
        2 => random_secret(32) }, 2);
    my $if = $ring->('pii-index.key', { 1 => random_secret(32) }, 1);
    my $it = $o{iterations} // 100000;
    return "commerce_jwt_keys_file $jf;\n"
        . "commerce_pii_keys_file $pf;\n"
        . "commerce_pii_index_key_file $if;\n"
        . "commerce_password_iterations $it;\n";
}

sub account_main { "thread_pool default threads=4;\n" }


# png_image(tag => 'x', w => 3, h => 2, size => N): a valid w x h grey PNG
# (CRCs right), told apart by its tag (a tEXt chunk), padded to exactly
# size bytes with an ancillary chunk when asked.
sub png_image {
    my (%o) = @_;
    my ($w, $h) = ($o{w} // 3, $o{h} // 2);
    my $chunk = sub {
        my ($type, $data) = @_;
        return pack('N', length $data) . $type . $data
            . pack('N', Compress::Zlib::crc32($type . $data));
    };
    my $raw = join '', map { "\0" . ("\x80" x $w) } 1 .. $h;
    my $png = "\x89PNG\r\n\x1a\n"
        . $chunk->('IHDR', pack('NNCCCCC', $w, $h, 8, 0, 0, 0, 0))
        . $chunk->('tEXt', "tag\0" . ($o{tag} // 'x'))
        . $chunk->('IDAT', Compress::Zlib::compress($raw));
    if ($o{size}) {
        my $pad = $o{size} - length($png) - 12 - 12;
        croak "a PNG of $o{size} bytes is too small" if $pad < 0;
        $png .= $chunk->('zzPd', 'p' x $pad);
    }
    return $png . $chunk->('IEND', '');
}
sub jwt_key { pack 'H*', $_[0]{jwt_keyring}{$_[1]} }
sub jwt_current_kid { $_[0]{jwt_current_kid} }


# ---------------------------------------------------------------------------
# HTTP

# Builds the request bytes.  Options: body (string or ref -> JSON),
# content_type (default application/json when there is a body; undef to
# omit), token, user, auth (raw Authorization value), headers {...},
# chunked => 1, keepalive => 1, host.
sub build_request {
    my ($self, $method, $path, %o) = @_;
    my $body = $o{body};
    $body = $JSON->encode($body) if ref $body;
    my @h = ('Host: ' . ($o{host} // 'localhost'));
    my $auth = $o{auth};
    $auth = "Bearer $o{token}" if !defined $auth && defined $o{token};
    $auth = 'Bearer ' . $self->token($o{user}) if !defined $auth
        && defined $o{user};
    push @h, "Authorization: $auth" if defined $auth;
    if (defined $body) {
        my $ct = exists $o{content_type} ? $o{content_type}
            : 'application/json';
        push @h, "Content-Type: $ct" if defined $ct;
        if ($o{chunked}) {
            push @h, 'Transfer-Encoding: chunked';
            my $chunks = '';
            my $size = $o{chunk_size} // 8192;
            for (my $i = 0; $i < length $body; $i += $size) {
                my $c = substr($body, $i, $size);
                $chunks .= sprintf("%x\r\n%s\r\n", length $c, $c);
            }
            $body = $chunks . "0\r\n\r\n";
        } else {
            push @h, 'Content-Length: ' . length($body);
        }
    } elsif ($method eq 'POST' || $method eq 'PUT') {
        push @h, 'Content-Length: 0' unless $o{no_length};
    }
    while (my ($k, $v) = each %{ $o{headers} // {} }) {
        push @h, "$k: $v";
    }
    push @h, 'Connection: close' unless $o{keepalive};
    return "$method $path HTTP/1.1\r\n" . join("\r\n", @h) . "\r\n\r\n"
        . ($body // '');
}

# Parses one HTTP response out of raw bytes.
sub parse_response {
    my ($raw) = @_;
    my $res = { status => 0, headers => {}, body => undef, json => undef,
        raw => $raw };
    return $res unless defined $raw
        && $raw =~ /\AHTTP\/1\.[01] (\d{3})[^\r\n]*\r\n(.*?)\r\n\r\n/s;
    $res->{status} = 0 + $1;
    my $head_len = $+[0];
    for my $line (split /\r\n/, $2) {
        my ($k, $v) = split /:\s*/, $line, 2;
        $k = lc $k;
        $res->{headers}{$k} = exists $res->{headers}{$k}
            ? "$res->{headers}{$k}, $v" : $v;
    }
    my $body = substr($raw, $head_len);
    if (($res->{headers}{'transfer-encoding'} // '') =~ /chunked/i) {
        my $out = '';
        while ($body =~ s/\A([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $out .= substr($body, 0, $n);
            substr($body, 0, $n + 2) = '';
        }
        $body = $out;
    } elsif (defined(my $cl = $res->{headers}{'content-length'})) {
        $body = substr($body, 0, $cl);
    }
    $res->{body} = $body;
    $res->{json} = eval { $JSON->decode($body) } if length $body;
    return $res;
}

# exchange([ { bytes, close_after, keep_open }, ... ], port => , timeout => )
# The engine behind req, raw and concurrent: connects every socket at once
# (non-blocking), writes each request while reading what comes back, and
# collects until every peer closed, a complete response arrived (when
# complete => 1) or the deadline passed.  Returns results in order, each
# { raw, elapsed, error }.
sub exchange {
    my ($self, $reqs, %o) = @_;
    my $timeout = $o{timeout} // 30;
    my $start = time;
    my $deadline = $start + $timeout;
    my (@st, %by_fd);
    my ($rsel, $wsel) = (IO::Select->new, IO::Select->new);

    for my $i (0 .. $#$reqs) {
        my $q = $reqs->[$i];
        my $port = $q->{port} // $o{port};
        my $s = IO::Socket::INET->new(
            PeerAddr => '127.0.0.1',
            PeerPort => $port,
            Proto    => 'tcp',
            Blocking => 0,
        );
        my $st = { i => $i, sock => $s, out => $q->{bytes} // '', in => '',
            done => 0, error => undef, close_after => $q->{close_after},
            complete => $q->{complete} // $o{complete} };
        push @st, $st;
        if (!$s) {
            $st->{error} = "connect: $!";
            $st->{done} = 1;
            next;
        }
        $by_fd{ fileno $s } = $st;
        $wsel->add($s) if length $st->{out};
        $rsel->add($s);
    }

    while ($rsel->count || $wsel->count) {
        my $now = time;
        # client aborts: close the socket after close_after seconds
        for my $st (@st) {
            next if $st->{done} || !defined $st->{close_after};
            next if $now - $start < $st->{close_after};
            $rsel->remove($st->{sock});
            $wsel->remove($st->{sock});
            close $st->{sock};
            $st->{done} = 1;
            $st->{error} = 'closed by client';
        }
        last if $now >= $deadline;
        my $wait = $deadline - $now;
        $wait = 0.05 if grep { !$_->{done} && defined $_->{close_after} }
            @st;
        $wait = 0.5 if $wait > 0.5;
        my ($r, $w) = IO::Select->select($rsel, $wsel, undef, $wait);
        for my $s (@{ $w // [] }) {
            my $st = $by_fd{ fileno $s } or next;
            my $n = syswrite($s, $st->{out}, 262144);
            if (defined $n) {
                substr($st->{out}, 0, $n) = '';
                $wsel->remove($s) unless length $st->{out};
            } elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINPROGRESS
                && $! != EINTR) {
                # the server may answer before reading all (413): keep
                # reading what it sent
                $st->{werror} = "write: $!";
                $wsel->remove($s);
            }
        }
        for my $s (@{ $r // [] }) {
            my $st = $by_fd{ fileno $s } or next;
            my $n = sysread($s, my $buf, 262144);
            if ($n) {
                $st->{in} .= $buf;
                if ($st->{complete} && _complete($st->{in})) {
                    $st->{done} = 1;
                    $st->{elapsed} = time - $start;
                    $rsel->remove($s);
                    $wsel->remove($s);
                    close $s unless $o{keep_open};
                }
                next;
            }
            next if !defined $n && ($! == EAGAIN || $! == EWOULDBLOCK
                || $! == EINTR);
            $st->{error} = "read: $!" if !defined $n && !length $st->{in};
            $st->{done} = 1;
            $st->{elapsed} = time - $start;
            $rsel->remove($s);
            $wsel->remove($s);
            close $s;
        }
    }
    for my $st (@st) {
        next if $st->{done};
        $st->{error} //= 'timeout';
        $st->{elapsed} = time - $start;
        close $st->{sock} if $st->{sock};
    }
    return map {
        my $res = parse_response($_->{in});
        $res->{error} = $_->{error} if !$res->{status};
        $res->{elapsed} = $_->{elapsed};
        # keep_open: the still open socket of a complete response
        $res->{sock} = $_->{sock} if $o{keep_open} && $_->{complete}
            && $_->{sock} && defined fileno $_->{sock};
        $res;
    } @st;
}

# a complete response in the buffer (for keep-alive exchanges)
sub _complete {
    my ($in) = @_;
    return 0 unless $in =~ /\r\n\r\n/;
    my $res = parse_response($in);
    return 0 unless $res->{status};
    my $h = $res->{headers};
    if (defined $h->{'content-length'}) {
        my $hl = index($in, "\r\n\r\n") + 4;
        return length($in) - $hl >= $h->{'content-length'};
    }
    return $in =~ /\r\n0\r\n\r\n\z/ if ($h->{'transfer-encoding'} // '')
        =~ /chunked/i;
    return 0;
}

# req($method, $path, body => ..., token => ... | user => $id, headers =>
# {...}, name => instance, timeout => 30): one request on a new connection.
# Returns { status, headers (lowercased), body, json, raw, elapsed }.
sub req {
    my ($self, $method, $path, %o) = @_;
    my $inst = $self->_nginx($o{name});
    my ($res) = $self->exchange([ { bytes =>
        $self->build_request($method, $path, %o) } ],
        port => $inst->{port}, timeout => $o{timeout} // 30 * _slow());
    return $res;
}

sub get { my ($self, $path, %o) = @_; $self->req('GET', $path, %o) }

sub post {
    my ($self, $path, $body, %o) = @_;
    return $self->req('POST', $path, body => $body, %o);
}

# raw($bytes, name => , timeout => , close_after => seconds): sends bytes as
# they are and returns the parsed response (raw text in ->{raw}).
sub raw {
    my ($self, $bytes, %o) = @_;
    my $inst = $self->_nginx($o{name});
    my ($res) = $self->exchange([ { bytes => $bytes,
        close_after => $o{close_after} } ], port => $inst->{port},
        timeout => $o{timeout} // 30 * _slow());
    return $res;
}

# concurrent([ [method, path, body, token_or_user_opts], ... | {method,
# path, body, token, user, headers, name}, ... ], timeout => 30,
# name => instance): one connection per request, all opened at once, all
# written, then all read.  Returns the list of responses (in order).
sub concurrent {
    my ($self, $list, %o) = @_;
    my @reqs;
    for my $q (@$list) {
        my %q;
        if (ref $q eq 'ARRAY') {
            my ($m, $p, $b, $tok) = @$q;
            %q = (method => $m, path => $p, body => $b);
            if (ref $tok eq 'HASH') { %q = (%q, %$tok) }
            elsif (defined $tok) { $q{token} = $tok }
        } else {
            %q = %$q;
        }
        my $inst = $self->_nginx($q{name} // $o{name});
        push @reqs, {
            bytes => $self->build_request(delete $q{method},
                delete $q{path}, %q),
            port => $inst->{port},
        };
    }
    return $self->exchange(\@reqs, timeout => $o{timeout} // 30 * _slow());
}

# hold_idle($n, name => ..., batch => 1000): opens $n keep-alive
# connections, $batch at a time, each having completed one request (so they
# are idle keep-alive, not waiting for a request line), and keeps those that
# got a 200; returns their count.
sub hold_idle {
    my ($self, $n, %o) = @_;
    my $inst = $self->_nginx($o{name});
    my $bytes = $self->build_request('GET', $o{path} // '/api/v1/balance',
        user => $o{user} // 1, keepalive => 1);
    my $batch = $o{batch} // 1000;
    my $ok = 0;
    while ($n > 0) {
        my $k = $n < $batch ? $n : $batch;
        $n -= $k;
        for my $res ($self->exchange([ map { { bytes => $bytes } } 1 .. $k ],
            port => $inst->{port}, complete => 1, keep_open => 1,
            timeout => $o{timeout} // 60))
        {
            my $s = delete $res->{sock} or next;
            if ($res->{status} == 200) {
                push @{ $self->{held} }, $s;
                $ok++;
            } else {
                close $s;
            }
        }
    }
    return $ok;
}

sub held_connections {
    my ($self) = @_;
    return grep { defined fileno $_ } @{ $self->{held} // [] };
}

sub release_idle {
    my ($self) = @_;
    close $_ for @{ $self->{held} // [] };
    $self->{held} = [];
}


# background(sub { ... }): runs the sub in a forked child (no tests there)
# while the test goes on, e.g. traffic while Postgres is stopped or nginx
# reloaded; collect($job) waits and returns what the sub returned (JSON-able).
sub background {
    my ($self, $code) = @_;
    my $n = ++$self->{bg_seq};
    my $file = "$self->{dir}/job-$n.json";
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        my $r = eval { { ok => 1, value => $code->() } }
            // { ok => 0, error => "$@" };
        if (open my $fh, '>', "$file.tmp") {
            print $fh JSON::PP->new->utf8->allow_nonref->allow_blessed
                ->encode($r);
            close $fh;
            rename "$file.tmp", $file;
        }
        POSIX::_exit(0);
    }
    my $job = { pid => $pid, file => $file };
    push @{ $self->{bg} }, $job;
    return $job;
}

sub collect {
    my ($self, $job, %o) = @_;
    my $ok = wait_until(sub { !_alive($job->{pid}) },
        timeout => $o{timeout} // 120, interval => 0.05);
    if (!$ok) {
        kill 'KILL', $job->{pid};
        croak "background job $job->{pid} did not finish in time";
    }
    my $text = $self->read_file($job->{file});
    croak "background job $job->{pid} left no result" if $text eq '';
    my $r = $JSON->decode($text);
    croak "background job failed: $r->{error}" unless $r->{ok};
    return $r->{value};
}

# ---------------------------------------------------------------------------
# assertions (exported)

# json_num($v): a JSON number comparison value from a string (psql output)
sub json_num { 0 + $_[0] }

sub _is_num {
    my ($v) = @_;
    return 0 if !defined $v || ref $v;
    my $f = B::svref_2object(\$v)->FLAGS;
    return ($f & (B::SVp_IOK | B::SVp_NOK)) && !($f & B::SVp_POK) ? 1 : 0;
}

sub _cmp {
    my ($got, $exp, $path, $errs) = @_;
    if (ref $exp eq 'Regexp') {
        push @$errs, "$path: expected a string matching $exp, got "
            . _show($got) if !defined $got || ref $got || $got !~ $exp;
        return;
    }
    if (ref $exp eq 'CODE') {
        push @$errs, "$path: check failed on " . _show($got)
            unless $exp->($got);
        return;
    }
    if (ref $exp eq 'HASH') {
        if (ref $got ne 'HASH') {
            push @$errs, "$path: expected an object, got " . _show($got);
            return;
        }
        for my $k (sort keys %$exp) {
            if (!exists $got->{$k}) { push @$errs, "$path.$k: missing"; next }
            _cmp($got->{$k}, $exp->{$k}, "$path.$k", $errs);
        }
        for my $k (sort keys %$got) {
            push @$errs, "$path.$k: unexpected key (" . _show($got->{$k})
                . ')' unless exists $exp->{$k};
        }
        return;
    }
    if (ref $exp eq 'ARRAY') {
        if (ref $got ne 'ARRAY') {
            push @$errs, "$path: expected an array, got " . _show($got);
            return;
        }
        push @$errs, "$path: expected " . @$exp . " elements, got "
            . @$got if @$exp != @$got;
        for my $i (0 .. ($#$exp < $#$got ? $#$exp : $#$got)) {
            _cmp($got->[$i], $exp->[$i], "$path\[$i]", $errs);
        }
        return;
    }
    if (blessed $exp && $exp->isa('JSON::PP::Boolean')) {
        push @$errs, "$path: expected " . ($exp ? 'true' : 'false')
            . ', got ' . _show($got)
            unless blessed $got && $got->isa('JSON::PP::Boolean')
                && !!$got == !!$exp;
        return;
    }
    if (!defined $exp) {
        push @$errs, "$path: expected null, got " . _show($got)
            if defined $got;
        return;
    }
    if (!defined $got || ref $got) {
        push @$errs, "$path: expected " . _show($exp) . ', got '
            . _show($got);
        return;
    }
    if (_is_num($exp)) {
        push @$errs, "$path: expected number $exp, got " . _show($got)
            unless _is_num($got) && $got == $exp;
    } else {
        push @$errs, "$path: expected string \"$exp\", got " . _show($got)
            unless !_is_num($got) && $got eq $exp;
    }
}

sub _show {
    my ($v) = @_;
    return 'null' unless defined $v;
    return JSON::PP->new->canonical->allow_nonref->allow_blessed
        ->convert_blessed->encode($v) if ref $v;
    return _is_num($v) ? $v : "\"$v\"";
}

# cmp_json($got_data, $expected, $name): exact structural comparison with
# JSON types (42 is not "42"); an expected qr// or sub { } matches loosely.
sub cmp_json {
    my ($got, $exp, $name) = @_;
    my @errs;
    _cmp($got, $exp, '$', \@errs);
    my $tb = Test::More->builder;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $tb->ok(!@errs, $name) or $tb->diag(join("\n", @errs[0 .. ($#errs > 20
        ? 20 : $#errs)]) . "\ngot: " . _show($got));
    return !@errs;
}

# is_response($res, $status, $expected_json_or_undef, $name)
sub is_response {
    my ($res, $status, $exp, $name) = @_;
    my $tb = Test::More->builder;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @errs;
    push @errs, "status $res->{status}, expected $status"
        . ($res->{error} ? " ($res->{error})" : '')
        if $res->{status} != $status;
    if (defined $exp) {
        if (!defined $res->{json}) {
            push @errs, "body is not JSON";
        } else {
            _cmp($res->{json}, $exp, '$', \@errs);
        }
        push @errs, 'Content-Type not application/json: '
            . ($res->{headers}{'content-type'} // 'none')
            if ($res->{headers}{'content-type'} // '') !~ m{^application/json};
    }
    $tb->ok(!@errs, $name) or $tb->diag(join("\n", @errs)
        . "\nresponse: " . _short($res->{raw}));
    return !@errs;
}

# is_error($res, $status, $code, $name): {"code": $code, "message": "..."}
sub is_error {
    my ($res, $status, $code, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return is_response($res, $status,
        { code => $code, message => qr/\S/ }, $name // "$status $code");
}

sub _short {
    my ($s) = @_;
    return '(nothing)' unless defined $s && length $s;
    return length $s > 1500 ? substr($s, 0, 1500) . '...' : $s;
}


# ---------------------------------------------------------------------------
# the end

# stop(): stops nginx instances (and Postgres unless shared) and checks the
# error logs, as tests.
sub stop {
    my ($self) = @_;
    return if $self->{stopped}++;
    for my $name (sort keys %{ $self->{nginx} }) {
        my $inst = $self->{nginx}{$name};
        next unless $inst->{started};
        my $graceful = $self->stop_nginx(name => $name);
        ok($graceful, "nginx $name exited gracefully");
        my @bad = $self->log_problems($name);
        ok(!@bad, "nginx $name: no alert/crit/emerg/sanitizer lines in logs")
            or diag(join "\n", @bad[0 .. ($#bad > 30 ? 30 : $#bad)]);
    }
    $self->release_idle;
    for my $h (@{ $self->{bg} // [] }) {
        kill 'KILL', $h->{pid} if _alive($h->{pid});
    }
    if ($self->{redis} && _alive($self->{redis}{pid})) {
        kill 'CONT', $self->{redis}{pid};
        $self->stop_redis(signal => 'KILL');
    }
    $self->stop_pg(mode => 'immediate') unless $self->{pg_shared};
}

# done(): stop everything (all harness objects), then done_testing.
sub done {
    my ($self) = @_;
    $_->stop for grep { $_->{owner} == $$ } reverse @INSTANCES;
    done_testing();
}

sub _cleanup {
    my ($self) = @_;
    return unless $self->{owner} == $$;
    for my $inst (values %{ $self->{nginx} }) {
        if (_alive($inst->{pid})) {
            my @kids = map { $_->[0] } _children($inst->{pid});
            kill 'KILL', $inst->{pid}, @kids;
            waitpid($inst->{pid}, 0);
        }
    }
    for my $h (@{ $self->{bg} // [] }) {
        kill 'KILL', $h->{pid} if $h->{pid};
    }
    if ($self->{redis} && _alive($self->{redis}{pid})) {
        kill 'CONT', $self->{redis}{pid};
        kill 'KILL', $self->{redis}{pid};
    }
    if ($self->{pg} && $self->{pg}{running} && !$self->{pg_shared}) {
        $self->run([ "$PGBIN/pg_ctl", '-D', $self->{pg}{data}, '-m',
            'immediate', 'stop' ], as_pg => 1, timeout => 30);
    }
    my $failed = !Test::More->builder->is_passing;
    if ($failed) {
        for my $inst (values %{ $self->{nginx} }) {
            next unless $inst->{started};
            my @lines = split /\n/, $self->read_file("$inst->{prefix}/error.log");
            @lines = @lines[-40 .. -1] if @lines > 40;
            diag("--- tail of $inst->{prefix}/error.log ---\n"
                . join("\n", @lines)) if @lines;
        }
    }
    if ($ENV{COMMERCE_TEST_KEEP}) {
        diag("kept test directory $self->{dir}");
    } else {
        rmtree($self->{dir});
    }
}

END {
    my $rc = $?;
    $_->_cleanup for reverse @INSTANCES;
    $? = $rc;
}

1;
