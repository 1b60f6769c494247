"""benchlib.py: what bench/'s Python scripts share: a free loopback port, a
process's resident memory read from /proc, and each script's own section
of bench/RESULTS.md (write_section), kept when compare.py rewrites the
rest."""

import socket


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def server_stats(port, host="127.0.0.1"):
    """The server's `stats` (memcached's general group) as a dict of strings."""
    with socket.create_connection((host, port), timeout=10) as c:
        c.sendall(b"stats\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
    return {f[1]: f[2] for f in (line.split() for line in data.decode().splitlines())
            if len(f) == 3 and f[0] == "STAT"}


def rss_kb(pid):
    """VmRSS of pid in KiB (0 when the process has none, e.g. a zombie)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# RESULTS.md from this marker on holds the sections of the scripts other
# than compare.py (which rewrites what comes before it and keeps the rest).
KEEP_BEGIN = "<!-- kept by compare.py: sections of other scripts -->"


def _markers(name):
    return "<!-- bench/%s begin -->" % name, "<!-- bench/%s end -->" % name


def read_section(path, name):
    """The text of script `name`'s section of a Markdown file (between its
    markers, without them), or None when the file has none."""
    begin, end = _markers(name)
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    if begin not in text or end not in text:
        return None
    return text[text.index(begin) + len(begin):text.index(end)].strip("\n")


def write_section(path, name, section):
    """Puts `section` (Markdown, from its "## " heading on) between script
    `name`'s markers in path: in place of its previous section, or at the
    end, after compare.py's KEEP_BEGIN marker (added when missing)."""
    begin, end = _markers(name)
    block = "%s\n%s\n%s" % (begin, section.strip("\n"), end)
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        if KEEP_BEGIN not in text:
            text = text.rstrip("\n") + "\n\n" + KEEP_BEGIN + "\n"
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)
