"""A throwaway CA and the proxy's certificates for tests of `listen ... tls`
(and scripts/bench's tls section), made with python3-cryptography (Debian): a CA, leaf certificates for
localhost / 127.0.0.1 signed by it (valid, expired, or with another key), and
what a client needs to check or pin them (the CA file, Chromium's SPKI hash,
RFC 5929's tls-server-end-point hash).
"""

import base64
import datetime
import hashlib
import pathlib
import ssl
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class ProxyCA:
    """A CA in `directory`; issue() writes a leaf (cert chain PEM, key PEM)."""

    def __init__(self, directory, cn="authgate test CA"):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.utcnow()
        self.cert = (x509.CertificateBuilder()
                     .subject_name(_name(cn)).issuer_name(_name(cn))
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .sign(self.key, hashes.SHA256()))
        self.ca_file = self.dir / "ca.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.n = 0

    def issue(self, cn="localhost", expired=False, sig_hash=None, chain=True, names=None):
        """A leaf for localhost/127.0.0.1/::1 (or the DNS names in names)
        -> (cert_path, key_path). The cert file holds the leaf then the CA
        (a chain)."""
        self.n += 1
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.utcnow()
        if expired:
            nb, na = now - datetime.timedelta(days=10), now - datetime.timedelta(days=1)
        else:
            nb, na = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2)
        cert = (x509.CertificateBuilder()
                .subject_name(_name(cn)).issuer_name(self.cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(nb).not_valid_after(na)
                .add_extension(x509.SubjectAlternativeName(
                    [x509.DNSName(n) for n in names] if names is not None else [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1"))]), False)
                .sign(self.key, sig_hash or hashes.SHA256()))
        cp = self.dir / ("leaf%d.pem" % self.n)
        kp = self.dir / ("leaf%d.key" % self.n)
        pem = cert.public_bytes(serialization.Encoding.PEM)
        if chain:
            pem += self.cert.public_bytes(serialization.Encoding.PEM)
        cp.write_bytes(pem)
        kp.write_bytes(_pem_key(key))
        return str(cp), str(kp)

    def client_context(self):
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        return ctx

    def wrap(self, sock, server_hostname="localhost", session=None):
        """sock, connected to a proxy's TLS listener, as a TLS client that
        verifies the proxy against this CA (the handshake done)."""
        return self.client_context().wrap_socket(sock, server_hostname=server_hostname,
                                                 session=session)


def leaf_der(cert_path):
    """The first certificate of a PEM file, DER."""
    return x509.load_pem_x509_certificate(pathlib.Path(cert_path).read_bytes()).public_bytes(
        serialization.Encoding.DER)


def spki_hash(cert_path):
    """base64(SHA-256(SubjectPublicKeyInfo)): Chromium's
    --ignore-certificate-errors-spki-list entry for that certificate."""
    c = x509.load_pem_x509_certificate(pathlib.Path(cert_path).read_bytes())
    spki = c.public_key().public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def end_point_hash(der):
    """RFC 5929 tls-server-end-point: the certificate's hash with its
    signature's hash algorithm, SHA-256 for MD5 and SHA-1."""
    c = x509.load_der_x509_certificate(der)
    algo = c.signature_hash_algorithm
    name = algo.name if algo is not None else "sha256"
    if name in ("md5", "sha1"):
        name = "sha256"
    return hashlib.new(name, der).digest()


def cb_application_data(der):
    return b"tls-server-end-point:" + end_point_hash(der)


def ntlm_channel_bindings(der):
    """MsvAvChannelBindings (MS-NLMP 2.2.2.1): MD5 of the serialised
    gss_channel_bindings_struct, addresses empty, the RFC 5929 data."""
    app = cb_application_data(der)
    blob = b"\0" * 16 + len(app).to_bytes(4, "little") + app
    return hashlib.md5(blob).digest()
