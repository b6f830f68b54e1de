package admission

import (
	"strings"

	"github.com/slok/kubewebhook/v2/pkg/model"
)

// The admission responses, each built here: the webhooks say what they
// decided (admit, patch, refuse), not how a response is spelled.

// admit answers a review with no change, with warnings for the user.
func admit(id string, warnings ...string) *model.ValidatingAdmissionResponse {
	return &model.ValidatingAdmissionResponse{ID: id, Allowed: true, Warnings: warnings}
}

// unchanged answers a mutating review with no patch, with warnings.
func unchanged(id string, warnings ...string) *model.MutatingAdmissionResponse {
	return &model.MutatingAdmissionResponse{ID: id, Warnings: warnings}
}

// patched answers a mutating review with a JSON patch, with warnings.
func patched(id string, patch []byte, warnings []string) *model.MutatingAdmissionResponse {
	return &model.MutatingAdmissionResponse{ID: id, JSONPatchPatch: patch, Warnings: warnings}
}

// refuse refuses the object with every reason, joined, and warnings.
func refuse(id string, reasons []string, warnings ...string) *model.ValidatingAdmissionResponse {
	return &model.ValidatingAdmissionResponse{ID: id, Allowed: false, Message: strings.Join(reasons, "; "), Warnings: warnings}
}
