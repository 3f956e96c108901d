"""A Kerberos KDC of a test's own: MIT's krb5kdc on 127.0.0.1, realm ZKRS.TEST, its database,
configuration, keytabs and credential caches in one temporary directory. Only loopback.

    kdc = Kdc(dir, port)          # writes krb5.conf and kdc.conf, sets KRB5_CONFIG
    kdc.start()                   # kdb5_util create, krb5kdc
    kdc.keytab("zookeeper/localhost")
    kdc.ccache("bob")             # kinit from bob's keytab
    kdc.stop()
"""
import os
import subprocess
import time

REALM = "ZKRS.TEST"


def run(*cmd):
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


class Kdc:
    def __init__(self, directory, port):
        self.dir = directory
        self.port = port
        self.keytabs = {}
        self.ccaches = {}
        self.proc = None
        self.krb5_conf = os.path.join(directory, "krb5.conf")
        with open(self.krb5_conf, "w") as f:
            f.write(f"""[libdefaults]
    default_realm = {REALM}
    dns_lookup_realm = false
    dns_lookup_kdc = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = 1
    default_ccache_name = FILE:{directory}/default.cc
[realms]
    {REALM} = {{
        kdc = 127.0.0.1:{port}
    }}
[domain_realm]
    localhost = {REALM}
""")
        kdc_conf = os.path.join(directory, "kdc.conf")
        with open(kdc_conf, "w") as f:
            f.write(f"""[kdcdefaults]
    kdc_listen = 127.0.0.1:{port}
    kdc_tcp_listen = 127.0.0.1:{port}
[realms]
    {REALM} = {{
        database_name = {directory}/principal
        key_stash_file = {directory}/stash
        acl_file = {directory}/kadm5.acl
        max_life = 1d
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
    }}
[logging]
    kdc = FILE:{directory}/kdc.log
""")
        os.environ["KRB5_CONFIG"] = self.krb5_conf
        os.environ["KRB5_KDC_PROFILE"] = kdc_conf
        # Replay caches stay in this run's directory.
        os.environ["KRB5RCACHEDIR"] = directory

    def start(self):
        run("kdb5_util", "-r", REALM, "-P", "master-secret", "create", "-s")
        self.proc = subprocess.Popen(["krb5kdc", "-n", "-r", REALM], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None

    def admin(self, query):
        run("kadmin.local", "-r", REALM, "-q", query)

    def keytab(self, principal):
        """A new principal with a random key, and a keytab holding it."""
        path = os.path.join(self.dir, principal.replace("/", "_") + ".keytab")
        self.admin(f"addprinc -randkey {principal}")
        self.admin(f"ktadd -k {path} {principal}")
        self.keytabs[principal] = path
        return path

    def ccache(self, principal):
        """A credential cache holding a TGT for the principal (kinit from its keytab); the
        KDC may take a moment to answer after its start."""
        path = os.path.join(self.dir, principal.replace("/", "_") + ".cc")
        for _ in range(100):
            try:
                run("kinit", "-c", f"FILE:{path}", "-kt", self.keytabs[principal], principal)
                break
            except subprocess.CalledProcessError:
                time.sleep(0.1)
        else:
            raise SystemExit("the KDC does not issue tickets")
        self.ccaches[principal] = path
        return path

    def jaas_entry(self, section, principal, keytab=None):
        """A JAAS section logging in as `principal` from its keytab (Krb5LoginModule)."""
        return f"""{section} {{
       com.sun.security.auth.module.Krb5LoginModule required
       useKeyTab=true
       keyTab="{keytab or self.keytabs[principal]}"
       storeKey=true
       useTicketCache=false
       principal="{principal}";
}};
"""
