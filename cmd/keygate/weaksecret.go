package main

import (
	"log/slog"

	"github.com/keygate/keygate/pkg/authz"
	"github.com/keygate/keygate/pkg/metrics"
)

// weakSecretWarning is serve's authz.WeakSecretReporter: a key imported
// before the import rules, with a secret shorter than 24 bytes or of fewer
// than 10 distinct characters, keeps working, and its operators are told —
// once per key record, naming the key, never its secret — in the log and
// in keygate_keys_weak_secrets_total.
type weakSecretWarning struct {
	log *slog.Logger
	m   *metrics.Metrics
}

func (w weakSecretWarning) WeakSecret(k *authz.Key) {
	w.log.Warn("key answers to a custom secret shorter or more uniform than imported secrets may now be; it keeps working: regenerate it, or import one of at least 24 bytes and 10 distinct characters",
		"key_id", k.Spec.ID, "account_id", k.Spec.AccountID, "app_id", k.Spec.AppID, "tenant_id", k.Spec.TenantID)
	w.m.ObserveWeakSecret()
}
