package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/pod-identity/injector/internal/filewatch"
	"github.com/pod-identity/injector/internal/quote"
)

// IdentityEntry is one ServiceAccount's role in the EKS pod identity
// webhook's pod-identity-webhook ConfigMap (its "config" key, a JSON
// object keyed "namespace/name", or "*/name" for every namespace).
type IdentityEntry struct {
	// RoleARN is the role to assume; a full ARN.
	RoleARN string `json:"RoleARN"`
	// Audience, when set, is the token audience.
	Audience string `json:"Audience"`
	// UseRegionalSTS turns on AWS_STS_REGIONAL_ENDPOINTS=regional.
	UseRegionalSTS bool `json:"UseRegionalSTS"`
	// TokenExpiration, when above 0, is the token lifetime in seconds.
	TokenExpiration int64 `json:"TokenExpiration"`
}

// ParseIdentities parses the ConfigMap's config. Every key must be
// "namespace/name" or "*/name" and every role a valid role ARN: the
// entries are identities, and a bad one is refused when the file is read
// (the last good file stays in force) rather than handed to pods.
func ParseIdentities(data []byte) (map[string]IdentityEntry, error) {
	var m map[string]IdentityEntry
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf(`expected {"namespace/name":{"RoleARN":"arn:aws:iam::111122223333:role/name"}}: %w`, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ns, name, ok := strings.Cut(k, "/")
		switch {
		case !ok || (ns != "*" && len(validation.IsDNS1123Label(ns)) > 0) || len(validation.IsDNS1123Subdomain(name)) > 0:
			return nil, fmt.Errorf("key %s: expected namespace/name or */name (the EKS webhook matches no other wildcard)", quote.Value(k))
		case !validRoleARN(m[k].RoleARN):
			return nil, fmt.Errorf("%s: RoleARN %s: expected %s", k, quote.Value(m[k].RoleARN), roleNameExpected)
		case m[k].TokenExpiration != 0 && (m[k].TokenExpiration < MinTokenExpiration || m[k].TokenExpiration > MaxTokenExpiration):
			return nil, fmt.Errorf("%s: TokenExpiration %d: expected 0 (the default) or %d to %d seconds", k, m[k].TokenExpiration, MinTokenExpiration, MaxTokenExpiration)
		}
	}
	return m, nil
}

// Identities are the ServiceAccounts' roles of an identities file, kept current.
type Identities struct {
	w *filewatch.Value[map[string]IdentityEntry]
}

// Lookup returns the entry of the ServiceAccount namespace/name, exact
// first, then "*/name", and the key it was found under.
func (i *Identities) Lookup(namespace, name string) (IdentityEntry, string, bool) {
	m := i.w.Load()
	for _, key := range []string{namespace + "/" + name, "*/" + name} {
		if e, ok := m[key]; ok {
			return e, key, true
		}
	}
	return IdentityEntry{}, "", false
}

// WatchIdentities loads file and keeps it current until ctx ends.
func WatchIdentities(ctx context.Context, file string, log logrus.FieldLogger) (*Identities, error) {
	w, err := filewatch.File(ctx, file, "aws identities", ParseIdentities, nil, log)
	if err != nil {
		return nil, err
	}
	return &Identities{w: w}, nil
}
