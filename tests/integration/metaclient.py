"""metaclient.py: a small client for memcached's meta protocol.

pymemcache speaks only the classic text protocol, so the meta tests use
this: requests are written as protocol.txt spells them ("mg <key> <flags>*",
"ms <key> <datalen> <flags>*" + data block, ...) and replies are parsed as
protocol.txt defines them:

    <RC> <flags>*\\r\\n                  HD EN NF NS EX MN
    VA <size> <flags>*\\r\\n<data>\\r\\n   a value (mg v, ma v)
    ME <key> <k>=<v>*\\r\\n              meta debug
    CLIENT_ERROR ... / SERVER_ERROR ... / ERROR

Every read is bounded by the connection's timeout (harness.Conn). Stdlib
only.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class Reply:
    """One meta reply: code ("HD", "VA", ...), its flag tokens in order,
    and the data block of a VA reply."""

    def __init__(self, line, value=None):
        self.line = line
        parts = line.split(b" ")
        self.code = parts[0].decode()
        self.size = None
        tokens = parts[1:]
        if self.code == "VA":
            self.size = int(tokens[0])
            tokens = tokens[1:]
        self.tokens = [t.decode("latin-1") for t in tokens if t]
        self.value = value

    def flag(self, letter):
        """The token after a return flag's letter ("" for a bare flag such
        as W), or None when the flag is absent."""
        for t in self.tokens:
            if t[0] == letter:
                return t[1:]
        return None

    def has(self, letter):
        return self.flag(letter) is not None

    @property
    def is_error(self):
        return self.code in ("ERROR", "CLIENT_ERROR", "SERVER_ERROR")

    def __repr__(self):
        return "<Reply %r%s>" % (self.line, "" if self.value is None else " +%d bytes" % len(self.value))


class MetaClient:
    """One connection; requests may be pipelined with send() and their
    replies read back with reply() or until_mn()."""

    def __init__(self, port, timeout=5.0):
        self.conn = harness.Conn(port, timeout=timeout)

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- requests ---------------------------------------------------------

    @staticmethod
    def _line(cmd, key, *flags):
        if isinstance(key, str):
            key = key.encode()
        words = [cmd.encode(), key] + [f.encode() if isinstance(f, str) else f for f in flags]
        return b" ".join(words) + b"\r\n"

    def send(self, data):
        self.conn.send(data)

    @classmethod
    def mg_req(cls, key, *flags):
        return cls._line("mg", key, *flags)

    @classmethod
    def ms_req(cls, key, value, *flags):
        if isinstance(value, str):
            value = value.encode()
        return cls._line("ms", key, str(len(value)), *flags) + value + b"\r\n"

    @classmethod
    def md_req(cls, key, *flags):
        return cls._line("md", key, *flags)

    @classmethod
    def ma_req(cls, key, *flags):
        return cls._line("ma", key, *flags)

    # -- replies ----------------------------------------------------------

    def reply(self):
        """Reads one reply (and its data block)."""
        line = self.conn.recv_until(b"\r\n")[:-2]
        r = Reply(line)
        if r.code == "VA":
            block = self.conn.recv_exact(r.size + 2)
            assert block.endswith(b"\r\n"), block[-10:]
            r.value = block[:-2]
        return r

    def until_mn(self):
        """Replies up to the next MN (excluded): the fence of a quiet
        pipeline."""
        out = []
        while True:
            r = self.reply()
            if r.code == "MN":
                return out
            out.append(r)

    # -- one request, one reply --------------------------------------------

    def mg(self, key, *flags):
        self.send(self.mg_req(key, *flags))
        return self.reply()

    def ms(self, key, value, *flags):
        self.send(self.ms_req(key, value, *flags))
        return self.reply()

    def md(self, key, *flags):
        self.send(self.md_req(key, *flags))
        return self.reply()

    def ma(self, key, *flags):
        self.send(self.ma_req(key, *flags))
        return self.reply()

    def mn(self):
        self.send(b"mn\r\n")
        return self.reply()

    def me(self, key, *flags):
        """Meta debug: (key, {field: value}) or None on a miss."""
        self.send(self._line("me", key, *flags))
        line = self.conn.recv_until(b"\r\n")[:-2]
        if line == b"EN":
            return None
        parts = line.decode("latin-1").split(" ")
        assert parts[0] == "ME", line
        return parts[1], dict(p.split("=", 1) for p in parts[2:])
