package main

import (
	"testing"

	"github.com/pod-identity/injector/pkg/providers/providertest"
)

// TestWebhookAgreesWithFixtures: the webhook's HTTP handler and `injector
// mutate` do the same thing to every fixture pod (see providertest.RunWebhook).
func TestWebhookAgreesWithFixtures(t *testing.T) {
	providertest.RunWebhook(t, fixtures)
}
