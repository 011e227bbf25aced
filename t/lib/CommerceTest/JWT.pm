package CommerceTest::JWT;

# HS256 JSON Web Tokens for tests, demos and benchmarks (core Perl only).
# Used by t/lib/CommerceTest.pm, t/mint-token and t/bench/run.
#
#   use CommerceTest::JWT qw(jwt_mint jwt_encode);
#   my $tok = jwt_mint(secret => $s, sub => 42, role => 'USER', ttl => 3600);
#   my $bad = jwt_encode(header => {alg => 'none'}, payload => {...},
#                        secret => $s);            # any alg, for negative tests

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256 hmac_sha384 hmac_sha512);
use JSON::PP ();
use MIME::Base64 qw(encode_base64 decode_base64);
use Exporter 'import';

our @EXPORT_OK = qw(jwt_mint jwt_encode jwt_decode b64url b64url_decode
    random_secret);

my $JSON = JSON::PP->new->canonical->utf8;

sub b64url {
    my ($bytes) = @_;
    my $s = encode_base64($bytes, '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+\z//;
    return $s;
}

sub b64url_decode {
    my ($s) = @_;
    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    return decode_base64($s);
}

# jwt_encode(header => {...} | $raw_json, payload => {...} | $raw_json,
#            secret => $key, alg => 'HS256'|'HS384'|'HS512'|'none')
# The signing algorithm defaults to the header's "alg"; "none" gives an
# empty signature.  Raw JSON strings are encoded as given (tampering tests).
sub jwt_encode {
    my (%o) = @_;
    my $header = $o{header} // { alg => 'HS256', typ => 'JWT' };
    my $payload = $o{payload} // {};
    my $alg = $o{alg} // (ref $header ? $header->{alg} : 'HS256') // 'HS256';

    my $h = ref $header ? $JSON->encode($header) : $header;
    my $p = ref $payload ? $JSON->encode($payload) : $payload;
    my $input = b64url($h) . '.' . b64url($p);

    my $key = $o{secret} // '';
    my %sign = (
        HS256 => \&hmac_sha256,
        HS384 => \&hmac_sha384,
        HS512 => \&hmac_sha512,
    );
    my $sig = '';
    if ($alg ne 'none') {
        my $f = $sign{$alg} or die "jwt_encode: unsupported alg $alg\n";
        $sig = b64url($f->($input, $key));
    }
    return "$input.$sig";
}

# jwt_mint(secret => $key, sub => $user_id, role => 'USER', ttl => 3600,
#          exp => $abs_epoch, iat => $epoch, extra => {...})
# sub is written as a decimal string (CONTRACT.md); pass sub_raw => $value to
# put any JSON value there instead.
sub jwt_mint {
    my (%o) = @_;
    die "jwt_mint: secret required\n" unless defined $o{secret};
    my $now = time;
    my %claims = (
        iat  => $o{iat} // $now,
        exp  => $o{exp} // ($now + ($o{ttl} // 3600)),
        role => $o{role} // 'USER',
    );
    if (exists $o{sub_raw}) {
        $claims{sub} = $o{sub_raw};
    } else {
        die "jwt_mint: sub required\n" unless defined $o{sub};
        $claims{sub} = "$o{sub}";
    }
    %claims = (%claims, %{ $o{extra} }) if $o{extra};
    return jwt_encode(
        header  => { alg => 'HS256', typ => 'JWT' },
        payload => \%claims,
        secret  => $o{secret},
    );
}

# Returns (header, payload) hashrefs; no verification.
sub jwt_decode {
    my ($tok) = @_;
    my ($h, $p) = split /\./, $tok;
    return ($JSON->decode(b64url_decode($h)), $JSON->decode(b64url_decode($p)));
}

sub random_secret {
    my ($bytes) = @_;
    $bytes //= 32;
    my $s = '';
    if (open my $fh, '<:raw', '/dev/urandom') {
        read($fh, $s, $bytes) == $bytes or $s = '';
        close $fh;
    }
    $s = join '', map { chr int rand 256 } 1 .. $bytes if $s eq '';
    return unpack 'H*', $s;
}

1;
