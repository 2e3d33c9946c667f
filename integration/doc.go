// Package integration holds whole-system tests: the real keygate binary on
// loopback, driven the way Envoy (and later nginx) drive it.
package integration
