package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/sirupsen/logrus"
)

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
	set atomic.Pointer[map[string]struct{}]
}

// Has reports whether the ServiceAccount namespace/name uses Pod Identity.
func (a *Associations) Has(namespace, name string) bool {
	m := a.set.Load()
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

func (a *Associations) load(file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read pod identity associations: %w", err)
	}
	m, err := ParseAssociations(data)
	if err != nil {
		return fmt.Errorf("pod identity associations %s: %w", file, err)
	}
	a.set.Store(&m)
	return nil
}

// WatchAssociations loads file and reloads it whenever it or its directory
// changes (a mounted ConfigMap is swapped through a symlink) until ctx ends.
// The first load must succeed; a later bad file keeps the last good set and
// is logged.
func WatchAssociations(ctx context.Context, file string, log logrus.FieldLogger) (*Associations, error) {
	a := &Associations{}
	if err := a.load(file); err != nil {
		return nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch pod identity associations: %w", err)
	}
	if err := w.Add(filepath.Dir(file)); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("watch pod identity associations %s: %w", file, err)
	}
	go func() {
		defer func() { _ = w.Close() }()
		// Coalesce bursts of events (a ConfigMap update is several renames).
		var timer <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-w.Events:
				if !ok {
					return
				}
				timer = time.After(100 * time.Millisecond)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.WithError(err).Warn("watching pod identity associations")
			case <-timer:
				timer = nil
				if err := a.load(file); err != nil {
					log.WithError(err).Warn("keeping the last good pod identity associations")
					continue
				}
				log.WithField("file", file).Info("reloaded pod identity associations")
			}
		}
	}()
	return a, nil
}
