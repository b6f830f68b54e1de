package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/auth"
	"github.com/openai/openai-go/v3/option"
	"k8s.io/utils/ptr"
)

// The AI model APIs as identity targets (deploy/providers/anthropic-claude.yaml
// and openai.yaml, loaded by the suite's injector): their own SDKs, with
// what the injector hands the pod and no key, get a token from the fakes,
// which verify the exchange as the services do, and make one API call.

const claudeOrg = "3f2a9c1e-7b4d-4e8a-9c0f-1a2b3c4d5e6f"

func TestClaudeAPIAgentCallsTheAPIWithoutAKey(t *testing.T) {
	ns := namespace(t, nil)
	rule := "fdrl_" + randomHex(6)
	annotations := map[string]string{"anthropic.pod-identity.io/federation-rule-id": rule, "anthropic.pod-identity.io/organization-id": claudeOrg}
	serviceAccount(t, ns, "agent", annotations)
	serviceAccount(t, ns, "other", annotations)
	fakes.Anthropic.AddRule(rule, claudeOrg, Subject(ns, "agent"))
	stored := storedPod(t, ns, podSpec("agent", "agent"))
	assertInjected(t, stored, "anthropic-identity-token", "/var/run/secrets/anthropic.com", map[string]string{
		"ANTHROPIC_IDENTITY_TOKEN_FILE": "/var/run/secrets/anthropic.com/token",
		"ANTHROPIC_FEDERATION_RULE_ID":  rule,
		"ANTHROPIC_ORGANIZATION_ID":     claudeOrg,
	})
	if src := volume(stored, "anthropic-identity-token").Projected.Sources[0].ServiceAccountToken; src.Audience != ClaudeAudience || *src.ExpirationSeconds != 3600 {
		t.Errorf("token projection %+v", src)
	}
	c := stored.Spec.Containers[0]
	t.Run("the SDK exchanges the pod's own token and calls the API", func(t *testing.T) {
		files := podFiles{t.TempDir()}
		projectToken(t, stored, "anthropic-identity-token", files)
		setContainerEnv(t, c, files, map[string]string{"ANTHROPIC_BASE_URL": fakes.Anthropic.URL, "ANTHROPIC_CONFIG_DIR": t.TempDir()})
		reply, err := askClaude(t)
		if err != nil || reply != "hello, "+Subject(ns, "agent") {
			t.Errorf("anthropic-sdk-go with the injected identity: %q, %v", reply, err)
		}
	})
	t.Run("another serviceaccount's token is refused by the federation rule", func(t *testing.T) {
		files := podFiles{t.TempDir()}
		writeToken(t, ns, "other", ClaudeAudience, ptr.To[int64](3600), nil, "/var/run/secrets/anthropic.com/token", files)
		setContainerEnv(t, c, files, map[string]string{"ANTHROPIC_BASE_URL": fakes.Anthropic.URL, "ANTHROPIC_CONFIG_DIR": t.TempDir()})
		if _, err := askClaude(t); err == nil || !strings.Contains(err.Error(), "does not match federation rule") {
			t.Errorf("error %v, want the rule's refusal", err)
		}
	})
	t.Run("a token that outlives an hour is refused", func(t *testing.T) {
		files := podFiles{t.TempDir()}
		writeToken(t, ns, "agent", ClaudeAudience, ptr.To[int64](7200), nil, "/var/run/secrets/anthropic.com/token", files)
		setContainerEnv(t, c, files, map[string]string{"ANTHROPIC_BASE_URL": fakes.Anthropic.URL, "ANTHROPIC_CONFIG_DIR": t.TempDir()})
		if _, err := askClaude(t); err == nil || !strings.Contains(err.Error(), "exceeds the rule's 3600s") {
			t.Errorf("error %v, want the lifetime refusal", err)
		}
	})
}

// askClaude sends one message with a client configured from the
// environment alone, as an agent would.
func askClaude(t *testing.T) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := anthropic.NewClient()
	msg, err := client.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-e2e", MaxTokens: 16,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hello"))}})
	if err != nil {
		return "", err
	}
	if len(msg.Content) == 0 {
		return "", nil
	}
	return msg.Content[0].Text, nil
}

func TestOpenAIAgentCallsTheAPIWithoutAKey(t *testing.T) {
	ns := namespace(t, nil)
	idp, sa := "idp_"+randomHex(4), "svc_acct_"+randomHex(4)
	annotations := map[string]string{"openai.pod-identity.io/service-account-id": sa, "openai.pod-identity.io/identity-provider-id": idp}
	serviceAccount(t, ns, "agent", annotations)
	serviceAccount(t, ns, "other", annotations)
	fakes.OpenAI.MapSubject(idp, sa, Subject(ns, "agent"))
	stored := storedPod(t, ns, podSpec("agent", "agent"))
	assertInjected(t, stored, "openai-identity-token", "/var/run/secrets/openai.com", map[string]string{
		"OPENAI_IDENTITY_TOKEN_FILE":  "/var/run/secrets/openai.com/token",
		"OPENAI_SERVICE_ACCOUNT_ID":   sa,
		"OPENAI_IDENTITY_PROVIDER_ID": idp,
	})
	c := stored.Spec.Containers[0]
	t.Run("the documented lines exchange the pod's own token and call the API", func(t *testing.T) {
		files := podFiles{t.TempDir()}
		projectToken(t, stored, "openai-identity-token", files)
		setContainerEnv(t, c, files, nil)
		if owner, err := listOpenAIModels(t); err != nil || owner != Subject(ns, "agent") {
			t.Errorf("openai-go with the injected identity: %q, %v", owner, err)
		}
	})
	t.Run("another serviceaccount's token is refused by the subject mapping", func(t *testing.T) {
		files := podFiles{t.TempDir()}
		writeToken(t, ns, "other", OpenAIAudience, ptr.To[int64](3600), nil, "/var/run/secrets/openai.com/token", files)
		setContainerEnv(t, c, files, nil)
		if _, err := listOpenAIModels(t); err == nil || !strings.Contains(err.Error(), "status 401") || !strings.Contains(fakes.OpenAI.LastRefusal(), "is not mapped to service account") {
			t.Errorf("error %v (the fake refused: %q), want the subject mapping's refusal", err, fakes.OpenAI.LastRefusal())
		}
	})
}

// listOpenAIModels is what docs/ai.md tells an application to write, with
// the fake's client standing in for DNS; it returns the owner the fake
// names (the subject it mapped).
func listOpenAIModels(t *testing.T) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := openai.NewClient(option.WithHTTPClient(fakes.OpenAI.Client()), option.WithMaxRetries(0),
		option.WithWorkloadIdentity(auth.WorkloadIdentity{
			IdentityProviderID: os.Getenv("OPENAI_IDENTITY_PROVIDER_ID"),
			ServiceAccountID:   os.Getenv("OPENAI_SERVICE_ACCOUNT_ID"),
			Provider:           auth.K8sServiceAccountTokenProvider(os.Getenv("OPENAI_IDENTITY_TOKEN_FILE")),
		}))
	page, err := client.Models.List(ctx)
	if err != nil {
		return "", err
	}
	if len(page.Data) == 0 {
		return "", nil
	}
	return page.Data[0].OwnedBy, nil
}
