"""tlscerts.py: certificates for the TLS tests, made at test time with the
openssl CLI (nothing secret is committed).

Certs(dir) writes, under a fresh directory readable by the server's user
(`-u nobody` when the tests run as root):

    ca.pem, ca.key                the test CA
    server.pem, server.key        a server certificate for 127.0.0.1/localhost, signed by ca
    client.pem, client.key        a client certificate signed by ca
    other-ca.pem                  an unrelated CA
    rogue.pem, rogue.key          a client certificate signed by the unrelated CA
    self.pem, self.key            a self-signed server certificate (not from ca)

EC P-256 keys keep generation fast. make_server_cert() issues another server
certificate (for reload tests) into given paths.
"""

import os
import shutil
import subprocess
import tempfile


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def have_openssl():
    return shutil.which("openssl") is not None


class Certs:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="corecache-tls-")
        os.chmod(self.dir, 0o755)
        self.make_ca("ca", "corecache test CA")
        self.make_ca("other-ca", "unrelated CA")
        self.issue("server", "ca", "localhost", server=True)
        self.issue("client", "ca", "test client")
        self.issue("rogue", "other-ca", "rogue client")
        self.make_ca("self", "localhost", san=True)
        for name in os.listdir(self.dir):
            os.chmod(self.path(name), 0o644)

    def path(self, name):
        return os.path.join(self.dir, name)

    def key(self, name):
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", self.path(name + ".key"))

    def make_ca(self, name, cn, san=False):
        self.key(name)
        args = ["req", "-x509", "-new", "-key", self.path(name + ".key"), "-days", "2",
                "-subj", "/CN=" + cn, "-out", self.path(name + ".pem")]
        if san:
            args += ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
        openssl(*args)

    def issue(self, name, ca, cn, server=False, out_cert=None, out_key=None):
        """A certificate for `cn` signed by `ca`, into name.pem/name.key or the given paths."""
        key = out_key or self.path(name + ".key")
        cert = out_cert or self.path(name + ".pem")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
        csr = self.path(name + ".csr")
        openssl("req", "-new", "-key", key, "-subj", "/CN=" + cn, "-out", csr)
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            if server:
                f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
            else:
                f.write("extendedKeyUsage=clientAuth\n")
        openssl("x509", "-req", "-in", csr, "-CA", self.path(ca + ".pem"), "-CAkey",
                self.path(ca + ".key"), "-CAcreateserial", "-days", "2", "-extfile", ext,
                "-out", cert)
        os.chmod(key, 0o644)
        os.chmod(cert, 0o644)
        return cert, key

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)
