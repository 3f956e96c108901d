# zkrs-zkcli:latest -- the official Apache ZooKeeper CLI (zkCli.sh, Debian's `zookeeper`
# package, 3.8) with a headless JRE, netcat and the compat suites, to drive zkrs containers
# over a Docker network. Built by docker/build.sh on a base image it makes with debootstrap
# (no registry needed); the build context holds this file and compat-tests/{zkcli,fourlw}/run.sh.
#
#   docker run --rm --network NET zkrs-zkcli /compat-tests/zkcli/run.sh zk1:2181
#   docker run --rm -it --network NET zkrs-zkcli zkCli.sh -server zk1:2181
ARG BASE=zkrs-debian-base:bookworm
FROM ${BASE}

ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PATH=/usr/share/zookeeper/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Debian's zookeeper package depends on default-jre, whose GUI libraries (GTK, Mesa, X11) a CLI
# does not need: a local shim package provides default-jre from the headless JRE instead.
# python3-minimal: zkcli/run.sh computes digests with hashlib.
RUN set -eux; \
    mkdir -p /tmp/shim/DEBIAN; \
    printf '%s\n' \
      'Package: zkrs-jre-headless-shim' \
      'Version: 1.0' \
      'Architecture: all' \
      'Maintainer: zkrs <zkrs@localhost>' \
      'Depends: default-jre-headless' \
      'Provides: default-jre' \
      'Description: default-jre from the headless JRE, for zkCli.sh' \
      ' zkCli.sh needs no GUI libraries.' > /tmp/shim/DEBIAN/control; \
    dpkg-deb --build /tmp/shim /tmp/zkrs-jre-headless-shim.deb; \
    apt-get update; \
    apt-get install -y --no-install-recommends /tmp/zkrs-jre-headless-shim.deb \
      zookeeper netcat-openbsd python3-minimal procps; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /tmp/shim /tmp/*.deb /var/log/apt/* /var/log/dpkg.log; \
    test -x /usr/share/zookeeper/bin/zkCli.sh; java -version

COPY zkcli/run.sh /compat-tests/zkcli/run.sh
COPY fourlw/run.sh /compat-tests/fourlw/run.sh
WORKDIR /compat-tests
CMD ["bash"]

LABEL org.opencontainers.image.title="zkrs-zkcli" \
      org.opencontainers.image.description="Apache ZooKeeper's zkCli.sh (Debian bookworm) and the zkrs compat suites"
