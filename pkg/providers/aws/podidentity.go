package aws

import (
	"context"
	"encoding/json"
	"fmt"

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
	w *filewatch.Value[map[string]struct{}]
}

// Has reports whether the ServiceAccount namespace/name uses Pod Identity.
func (a *Associations) Has(namespace, name string) bool {
	_, ok := a.w.Load()[namespace+"/"+name]
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
	w, err := filewatch.File(ctx, file, "pod identity associations", ParseAssociations, nil, log)
	if err != nil {
		return nil, err
	}
	return &Associations{w: w}, nil
}
