package policy

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// Store holds the policies in force and the labels of the namespaces
// they may select, as the server's watches keep them, and answers which
// policies apply in a namespace. It remembers each namespace's answer
// until the policies or that namespace's labels change, so a request costs
// one map lookup however many policies there are. It holds entries only for
// namespaces it was told about: a request naming any other namespace is
// answered as for a namespace labelled only with its name, and adds nothing.
type Store struct {
	set atomic.Pointer[Set]

	mu         sync.RWMutex
	namespaces map[string]map[string]string
	scopes     map[string]Scope
	tallies    map[string]*tally
}

// NewStore returns an empty Store: no policies, no namespaces.
func NewStore() *Store {
	s := &Store{namespaces: map[string]map[string]string{}, scopes: map[string]Scope{}, tallies: map[string]*tally{}}
	s.set.Store(&Set{})
	return s
}

// SetPolicies replaces the policies in force. A policy keeps the
// decision counts of the policy of the same name it replaces.
func (s *Store) SetPolicies(set *Set) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range set.policies {
		if p.tally.Load() != nil {
			continue
		}
		t := s.tallies[p.name]
		if t == nil {
			t = &tally{}
			s.tallies[p.name] = t
		}
		p.tally.Store(t)
	}
	// Forget the counts of deleted policies.
	for name := range s.tallies {
		if !slices.ContainsFunc(set.policies, func(p *Policy) bool { return p.name == name }) {
			delete(s.tallies, name)
		}
	}
	s.set.Store(set)
	clear(s.scopes)
}

// Policies returns the policies in force.
func (s *Store) Policies() *Set { return s.set.Load() }

// SetNamespace records a namespace's labels.
func (s *Store) SetNamespace(name string, labels map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.namespaces[name]; ok && maps.Equal(old, labels) {
		return
	}
	s.namespaces[name] = maps.Clone(labels)
	delete(s.scopes, name)
}

// DeleteNamespace forgets a namespace.
func (s *Store) DeleteNamespace(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.namespaces, name)
	delete(s.scopes, name)
}

// Scope returns the policies that apply in a namespace; a nil Store has
// none.
func (s *Store) Scope(namespace string) Scope {
	if s == nil {
		return Scope{}
	}
	s.mu.RLock()
	sc, ok := s.scopes[namespace]
	labels, known := s.namespaces[namespace]
	s.mu.RUnlock()
	if ok {
		return sc
	}
	set := s.set.Load()
	if !known {
		// Not seen yet (created a moment ago, or made up): the one label
		// the API server gives every namespace, so that a policy selecting
		// it by name applies at once.
		return set.Select(map[string]string{"kubernetes.io/metadata.name": namespace})
	}
	sc = set.Select(labels)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Remember it only if nothing changed meanwhile.
	if s.set.Load() == set {
		if cur, still := s.namespaces[namespace]; still && maps.Equal(cur, labels) {
			s.scopes[namespace] = sc
		}
	}
	return sc
}

// LabelsUnknown says whether which policies apply in namespace depends on
// labels the store does not know: the namespace was never recorded, and a
// policy selects namespaces by a label other than their name. Offline
// commands then cannot tell what the cluster would do.
func (s *Store) LabelsUnknown(namespace string) bool {
	if s == nil {
		return false
	}
	s.mu.RLock()
	_, known := s.namespaces[namespace]
	s.mu.RUnlock()
	if known {
		return false
	}
	for _, p := range s.set.Load().All() {
		reqs, _ := p.selector.Requirements()
		for _, r := range reqs {
			if r.Key() != "kubernetes.io/metadata.name" {
				return true
			}
		}
	}
	return false
}
