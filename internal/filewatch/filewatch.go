// Package filewatch calls a function when files change: mounted Secrets
// and ConfigMaps are swapped through symlinks in their directory, so the
// directories are watched, bursts of events are coalesced, and an optional
// poll covers events that never arrive.
package filewatch

import (
	"context"
	"fmt"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/sirupsen/logrus"
)

// settle is how long a burst of events may last before onChange runs.
const settle = 100 * time.Millisecond

// Watch calls onChange after anything in dirs changes, and every poll
// (when poll > 0), until ctx ends.
func Watch(ctx context.Context, dirs []string, poll time.Duration, onChange func(), log logrus.FieldLogger) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch files: %w", err)
	}
	seen := map[string]bool{}
	for _, d := range dirs {
		if seen[d] {
			continue
		}
		seen[d] = true
		if err := w.Add(d); err != nil {
			_ = w.Close()
			return fmt.Errorf("watch directory %s: %w", d, err)
		}
	}
	var tick <-chan time.Time
	if poll > 0 {
		t := time.NewTicker(poll)
		tick = t.C
		go func() { <-ctx.Done(); t.Stop() }()
	}
	go func() {
		defer func() { _ = w.Close() }()
		var timer <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-w.Events:
				if !ok {
					return
				}
				timer = time.After(settle)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.WithError(err).Warn("watching files")
			case <-timer:
				timer = nil
				onChange()
			case <-tick:
				onChange()
			}
		}
	}()
	return nil
}
