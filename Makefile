# Installs apctl and apd the way distributions lay them out. Every path can
# be overridden on the command line; packagers set DESTDIR (a staging root)
# and PREFIX:
#
#   make                                  # cargo build --release
#   make install DESTDIR=/tmp/stage       # install into /tmp/stage/usr/...
#   make install PREFIX=/usr/local        # unit and D-Bus files follow SBINDIR
#   make install BUILDDIR=target/debug    # install what is already built there
#
# install builds nothing: run make (or cargo build) first, as root only the
# install. dist/apctl.spec packages the same tree as an RPM.
#
# apsim (the simulator) is a test tool and is not installed: `apd --sim`
# embeds it. The Cockpit page is built from cockpit/ by `make cockpit`
# (Node.js and npm: npm ci, then esbuild) into cockpit/dist, and installed
# into COCKPITDIR when built.

PREFIX ?= /usr
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
DBUSPOLICYDIR ?= $(DATADIR)/dbus-1/system.d
DBUSSERVICEDIR ?= $(DATADIR)/dbus-1/system-services
POLKITACTIONDIR ?= $(DATADIR)/polkit-1/actions
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
COCKPITDIR ?= $(DATADIR)/cockpit/apctl
COCKPITDIST ?= cockpit/dist
DESTDIR ?=

CARGO ?= cargo
BUILDDIR ?= target/release
INSTALL ?= install

# Where the shipped unit and activation file say apd is.
SHIPPED_APD := /usr/sbin/apd

.PHONY: all install install-bin install-systemd install-dbus install-polkit \
	install-completions install-man install-cockpit uninstall cockpit

all:
	$(CARGO) build --release --bin apd --bin apctl

install: install-bin install-systemd install-dbus install-polkit \
	install-completions install-man install-cockpit

install-bin:
	@for b in apd apctl; do \
		[ -x "$(BUILDDIR)/$$b" ] || { echo "make: $(BUILDDIR)/$$b is not built; run make first (or set BUILDDIR)" >&2; exit 1; }; \
	done
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR)
	$(INSTALL) -m 0755 $(BUILDDIR)/apd $(DESTDIR)$(SBINDIR)/apd
	$(INSTALL) -m 0755 $(BUILDDIR)/apctl $(DESTDIR)$(BINDIR)/apctl

install-systemd:
	$(INSTALL) -d $(DESTDIR)$(SYSTEMDUNITDIR)
	sed 's|$(SHIPPED_APD)|$(SBINDIR)/apd|g' systemd/apd.service > $(DESTDIR)$(SYSTEMDUNITDIR)/apd.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/apd.service

install-dbus:
	$(INSTALL) -d $(DESTDIR)$(DBUSPOLICYDIR) $(DESTDIR)$(DBUSSERVICEDIR)
	$(INSTALL) -m 0644 systemd/org.apctl.Apd1.conf $(DESTDIR)$(DBUSPOLICYDIR)/org.apctl.Apd1.conf
	sed 's|$(SHIPPED_APD)|$(SBINDIR)/apd|g' systemd/org.apctl.Apd1.service > $(DESTDIR)$(DBUSSERVICEDIR)/org.apctl.Apd1.service
	chmod 0644 $(DESTDIR)$(DBUSSERVICEDIR)/org.apctl.Apd1.service

install-polkit:
	$(INSTALL) -d $(DESTDIR)$(POLKITACTIONDIR)
	$(INSTALL) -m 0644 systemd/org.apctl.apd.policy $(DESTDIR)$(POLKITACTIONDIR)/org.apctl.apd.policy

install-completions:
	$(INSTALL) -d $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	$(INSTALL) -m 0644 completions/apctl.bash $(DESTDIR)$(BASHCOMPDIR)/apctl
	$(INSTALL) -m 0644 completions/_apctl $(DESTDIR)$(ZSHCOMPDIR)/_apctl
	$(INSTALL) -m 0644 completions/apctl.fish $(DESTDIR)$(FISHCOMPDIR)/apctl.fish

install-man:
	$(INSTALL) -d $(DESTDIR)$(MANDIR)/man8
	$(INSTALL) -m 0644 man/*.8 $(DESTDIR)$(MANDIR)/man8/

# The Cockpit page (cockpit/: manifest.json, index.html, scripts), when the
# tree has one; nothing otherwise.
cockpit:
	cd cockpit && npm ci --no-audit --no-fund && node build.mjs

install-cockpit:
	@if [ -d $(COCKPITDIST) ]; then \
		echo "installing $(COCKPITDIST) into $(DESTDIR)$(COCKPITDIR)"; \
		(cd $(COCKPITDIST) && find . -type f) | while read -r f; do \
			$(INSTALL) -D -m 0644 "$(COCKPITDIST)/$$f" "$(DESTDIR)$(COCKPITDIR)/$$f" || exit 1; \
		done; \
	fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/apd $(DESTDIR)$(BINDIR)/apctl
	rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/apd.service
	rm -f $(DESTDIR)$(DBUSPOLICYDIR)/org.apctl.Apd1.conf $(DESTDIR)$(DBUSSERVICEDIR)/org.apctl.Apd1.service
	rm -f $(DESTDIR)$(POLKITACTIONDIR)/org.apctl.apd.policy
	rm -f $(DESTDIR)$(BASHCOMPDIR)/apctl $(DESTDIR)$(ZSHCOMPDIR)/_apctl $(DESTDIR)$(FISHCOMPDIR)/apctl.fish
	cd man && for f in *.8; do rm -f "$(DESTDIR)$(MANDIR)/man8/$$f"; done
	rm -rf $(DESTDIR)$(COCKPITDIR)
