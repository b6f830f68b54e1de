package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/sirupsen/logrus"

	"github.com/pod-identity/injector/internal/filewatch"
)

// watchedFile is the parsed content of a file, kept current: reloaded
// whenever the file or its directory changes (a mounted ConfigMap is
// swapped through a symlink), keeping the last good content when a new one
// does not parse.
type watchedFile[T any] struct {
	v atomic.Pointer[T]
}

func (w *watchedFile[T]) load(file, what string, parse func([]byte) (T, error)) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	v, err := parse(data)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, file, err)
	}
	w.v.Store(&v)
	return nil
}

// watchFile loads file and reloads it until ctx ends. The first load must
// succeed; a later bad file keeps the last good content and is logged.
func watchFile[T any](ctx context.Context, file, what string, parse func([]byte) (T, error), log logrus.FieldLogger) (*watchedFile[T], error) {
	w := &watchedFile[T]{}
	if err := w.load(file, what, parse); err != nil {
		return nil, err
	}
	err := filewatch.Watch(ctx, []string{filepath.Dir(file)}, 0, func() {
		if err := w.load(file, what, parse); err != nil {
			log.WithError(err).Warn("keeping the last good " + what)
			return
		}
		log.WithField("file", file).Info("reloaded " + what)
	}, log)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", what, err)
	}
	return w, nil
}

// associationFile is the EKS Pod Identity association file's format.
type associationFile struct {
	Identities []struct {
		Namespace      string `json:"namespace"`
		ServiceAccount string `json:"serviceAccount"`
	} `json:"identities"`
}

// Associations is the set of namespace/ServiceAccount pairs that use EKS Pod
// Identity, kept current from a file.
type Associations struct {
	w *watchedFile[map[string]struct{}]
}

// Has reports whether the ServiceAccount namespace/name uses Pod Identity.
func (a *Associations) Has(namespace, name string) bool {
	m := a.w.v.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[namespace+"/"+name]
	return ok
}

// ParseAssociations parses the content of an association file.
func ParseAssociations(data []byte) (map[string]struct{}, error) {
	var f associationFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf(`expected {"identities":[{"namespace":"ns","serviceAccount":"sa"}]}: %w`, err)
	}
	m := make(map[string]struct{}, len(f.Identities))
	for i, id := range f.Identities {
		if id.Namespace == "" || id.ServiceAccount == "" {
			return nil, fmt.Errorf("identities[%d]: namespace and serviceAccount are both required", i)
		}
		m[id.Namespace+"/"+id.ServiceAccount] = struct{}{}
	}
	return m, nil
}

// WatchAssociations loads file and keeps it current until ctx ends. The
// first load must succeed; a later bad file keeps the last good set and is
// logged.
func WatchAssociations(ctx context.Context, file string, log logrus.FieldLogger) (*Associations, error) {
	w, err := watchFile(ctx, file, "pod identity associations", ParseAssociations, log)
	if err != nil {
		return nil, err
	}
	return &Associations{w: w}, nil
}
