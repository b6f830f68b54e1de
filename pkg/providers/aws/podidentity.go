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
	err := filewatch.Watch(ctx, []string{filepath.Dir(file)}, 0, func() {
		if err := a.load(file); err != nil {
			log.WithError(err).Warn("keeping the last good pod identity associations")
			return
		}
		log.WithField("file", file).Info("reloaded pod identity associations")
	}, log)
	if err != nil {
		return nil, fmt.Errorf("watch pod identity associations: %w", err)
	}
	return a, nil
}
