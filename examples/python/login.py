"""pylogin: the tutorial's login server ("作业") as a sockplay plugin, with
hashed passwords. The client sends user|password and gets success or fail.
The accounts file has NAME:HASH lines; the hash is scrypt (hashlib.scrypt at
one of OWASP's settings, N=2^14, r=8, p=5, a 16-byte salt) written
$scrypt$ln=14,r=8,p=5$SALT$KEY in base64. A file in the tutorial's plaintext
user:password form is refused. Add an account with
    printf 'PASSWORD\\n' | sockplay-pylogin useradd --accounts FILE NAME
and serve the file with sockplay serve --set pylogin.accounts=FILE."""
import base64
import getpass
import hashlib
import hmac
import os

import sockplay

plugin = sockplay.Plugin("pylogin", "1.0.0", "user|password -> success or fail, passwords hashed (the tutorial's login)",
                         transport="tcp", default_addr="127.0.0.1:8011",
                         options=[sockplay.Option("accounts", "", "accounts file of NAME:HASH lines (useradd writes them)")])
accounts = {}


def scrypt(password, salt, ln=14, r=8, p=5):
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=1 << ln, r=r, p=p, maxmem=64 << 20, dklen=32)


def make_hash(password):
    salt = os.urandom(16)
    return "$scrypt$ln=14,r=8,p=5$%s$%s" % (base64.b64encode(salt).decode(), base64.b64encode(scrypt(password, salt)).decode())


def check(password, stored):
    _, _, params, salt, key = stored.split("$")
    ln, r, p = (int(kv.partition("=")[2]) for kv in params.split(","))
    return hmac.compare_digest(scrypt(password, base64.b64decode(salt), ln, r, p), base64.b64decode(key))


@plugin.setup
def setup(config):
    accounts.clear()
    accounts[None] = make_hash(os.urandom(8).hex())  # unknown users cost a check too
    if not config["accounts"]:
        return plugin.log.warn("no accounts file (set pylogin.accounts=FILE): every login fails")
    with open(config["accounts"], encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            name, _, stored = line.strip().partition(":")
            if name and not name.startswith("#"):
                if not stored.startswith("$scrypt$") or stored.count("$") != 4:
                    raise sockplay.ConfigError(f"{config['accounts']} line {n} (user {name}): not a hashed password; "
                                               "add the account with sockplay-pylogin useradd")
                accounts[name] = stored


@plugin.tcp
def login(conn, addr):
    while data := conn.recv(1024):
        user, sep, password = data.decode("utf-8", "replace").rstrip("\r\n").partition("|")
        ok = check(password, accounts.get(user) or accounts[None]) and user in accounts and bool(sep)
        conn.send((b"success" if ok else b"fail") + (b"\n" if data.endswith(b"\n") else b""))


@plugin.command("useradd", "--accounts FILE NAME", "read a password from stdin, add NAME with its hash")
def useradd(plugin, args, stdio):
    if len(args) != 3 or args[0] != "--accounts" or not args[2] or set(args[2]) & set(":|# \n"):
        raise sockplay.UsageError("useradd takes --accounts FILE NAME (a NAME without ':', '|', '#' or spaces)")
    password = getpass.getpass() if stdio.inp.isatty() else stdio.inp.readline().rstrip("\r\n")
    if not password or "|" in password:
        raise sockplay.UsageError("the password (a line of stdin) must not be empty or hold '|'")
    with os.fdopen(os.open(args[1], os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600), "a+", encoding="utf-8") as f:
        f.seek(0)
        if any(line.partition(":")[0] == args[2] for line in f):
            raise ValueError(f"{args[1]}: user {args[2]} exists already")
        f.write(f"{args[2]}:{make_hash(password)}\n")
    print(f"added {args[2]} to {args[1]}", file=stdio.out)


if __name__ == "__main__":
    plugin.main()
