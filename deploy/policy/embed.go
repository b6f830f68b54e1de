// Package policy holds policy mode's manifests for the programs that
// write policies from them: `injector sync` in written mode starts from
// the generic mutating policy and its binding.
package policy

import _ "embed"

// MutatingPolicy is mutatingadmissionpolicy.yaml: the generic mutating
// admission policy.
//
//go:embed mutatingadmissionpolicy.yaml
var MutatingPolicy []byte

// Bindings is bindings.yaml: the policies' bindings, the mutating one
// first.
//
//go:embed bindings.yaml
var Bindings []byte
