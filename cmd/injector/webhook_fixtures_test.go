package main

import (
	"testing"

	"github.com/pod-identity/injector/internal/fixturetest"
)

// TestWebhookAgreesWithFixtures: the webhook's HTTP handler and `injector
// mutate` do the same thing to every fixture pod (see fixturetest.RunWebhook).
func TestWebhookAgreesWithFixtures(t *testing.T) {
	fixturetest.RunWebhook(t, fixtures)
}
