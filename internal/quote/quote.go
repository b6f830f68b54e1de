// Package quote quotes values that came from a request for logs and
// messages, at most a bounded prefix of each: a value of a megabyte must
// not become a megabyte of log line, warning or denial.
package quote

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxBytes is the longest prefix of a value that Value quotes.
const MaxBytes = 128

// Value returns s quoted as Go (and JSON, for printable text) would, cut to
// its first MaxBytes bytes at a character boundary, with the length of the
// whole when it was cut: "aaaa…" (1048576 bytes).
func Value(s string) string {
	if len(s) <= MaxBytes {
		return strconv.Quote(s)
	}
	cut := MaxBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]+"…") + " (" + strconv.Itoa(len(s)) + " bytes)"
}

// Prefix returns s cut like Value but unquoted, for a structured log field
// that the log format escapes itself.
func Prefix(s string) string {
	if len(s) <= MaxBytes {
		return s
	}
	cut := MaxBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

// Shell quotes s as one word for a POSIX shell, unless it is made only of
// characters no shell treats specially.
func Shell(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=@,+-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
