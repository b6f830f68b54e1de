package filewatch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/sirupsen/logrus"
)

// Value is the parsed content of a file, kept current: reloaded whenever
// the file or its directory changes (a mounted ConfigMap is swapped
// through a symlink), keeping the last good content when a new one does
// not parse.
type Value[T any] struct {
	v atomic.Pointer[T]
}

// Load returns the last good content.
func (w *Value[T]) Load() T { return *w.v.Load() }

func (w *Value[T]) load(file, what string, parse func([]byte) (T, error)) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	return w.store(file, what, data, parse)
}

func (w *Value[T]) store(file, what string, data []byte, parse func([]byte) (T, error)) error {
	v, err := parse(data)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, file, err)
	}
	w.v.Store(&v)
	return nil
}

// File loads file with parse and reloads it until ctx ends, calling
// onReload (when set) with each new good content. The first load must
// succeed; a later bad file keeps the last good content and is logged at
// warning level, naming what (e.g. "aws identities") and the error.
func File[T any](ctx context.Context, file, what string, parse func([]byte) (T, error), onReload func(T), log logrus.FieldLogger) (*Value[T], error) {
	return FileFrom(ctx, file, what, nil, parse, onReload, log)
}

// FileFrom is File with the file's first contents already read (nil:
// read them): the caller read it once for other uses.
func FileFrom[T any](ctx context.Context, file, what string, first []byte, parse func([]byte) (T, error), onReload func(T), log logrus.FieldLogger) (*Value[T], error) {
	w := &Value[T]{}
	if first != nil {
		if err := w.store(file, what, first, parse); err != nil {
			return nil, err
		}
	} else if err := w.load(file, what, parse); err != nil {
		return nil, err
	}
	err := Watch(ctx, []string{filepath.Dir(file)}, 0, func() {
		if err := w.load(file, what, parse); err != nil {
			log.WithError(err).Warn("keeping the last good " + what)
			return
		}
		if onReload != nil {
			onReload(w.Load())
		}
		log.WithField("file", file).Info("reloaded " + what)
	}, log)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", what, err)
	}
	return w, nil
}
