package main

import (
	"context"
	"fmt"
	"os"
	"reflect"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/backends"
)

// openStore opens the configured store with the audit key and a redactor that
// knows every secret of the configuration, so none reaches the audit trail.
func (g *globals) openStore(ctx context.Context, cfg config.Config) (store.Store, []byte, error) {
	dsn, err := config.ResolveSecret(cfg.Store.DSN, cfg.Store.DSNFile)
	if err != nil {
		return nil, nil, &exitError{code: exitUsage, err: fmt.Errorf("store.dsn: %w", err)}
	}
	key, err := config.ResolveSecret(cfg.Store.AuditKey, cfg.Store.AuditKeyFile)
	if err != nil {
		return nil, nil, &exitError{code: exitUsage, err: fmt.Errorf("store.audit_key: %w", err)}
	}
	secrets, err := secretValues(cfg)
	if err != nil {
		return nil, nil, &exitError{code: exitUsage, err: err}
	}
	st, err := backends.Open(ctx, backends.Config{Driver: cfg.Store.Driver, Path: cfg.Store.Path, DSN: dsn},
		store.Options{AuditKey: []byte(key), Redactor: audit.NewRedactor(secrets...)})
	if err != nil {
		return nil, nil, fmt.Errorf("store (%s): %w", cfg.Store.Driver, err)
	}
	return st, []byte(key), nil
}

// withStore loads the configuration, opens the store for fn and closes it after.
func (g *globals) withStore(ctx context.Context, fn func(st store.Store, auditKey []byte) error) error {
	cfg, _, err := g.loadConfig()
	if err != nil {
		return err
	}
	st, key, err := g.openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st, key)
}

// simulation builds the lab for --lab (nil without it) and the wait scale that
// goes with it. playbook, when set, must be the scenario's playbook.
func simulation(cfg config.Config, scenario, playbook string) (*lab.Lab, float64, error) {
	if scenario == "" {
		return nil, 1, nil
	}
	l, err := lab.New(scenario, lab.Options{Latency: cfg.Lab.Latency, Playbook: playbook})
	if err != nil {
		return nil, 0, usageErr("%v", err)
	}
	return l, cfg.Lab.TimeScale, nil
}

// secretValues collects every secret of the configuration — set directly or read
// from its *_file — by walking the Config for Secret fields, so a secret added to
// a new section is covered without editing this list.
func secretValues(cfg config.Config) ([]string, error) {
	var out []string
	var walk func(v reflect.Value) error
	walk = func(v reflect.Value) error {
		switch v.Kind() {
		case reflect.Map:
			for _, k := range v.MapKeys() {
				if err := walk(v.MapIndex(k)); err != nil {
					return err
				}
			}
		case reflect.Struct:
			t := v.Type()
			for i := range t.NumField() {
				if !t.Field(i).IsExported() {
					continue
				}
				f := v.Field(i)
				if s, ok := f.Interface().(config.Secret); ok {
					file := v.FieldByName(t.Field(i).Name + "File")
					path := ""
					if file.IsValid() && file.Kind() == reflect.String {
						path = file.String()
					}
					val, err := config.ResolveSecret(s, path)
					if err != nil {
						return err
					}
					if val != "" {
						out = append(out, val)
					}
					continue
				}
				if err := walk(f); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return out, walk(reflect.ValueOf(cfg))
}

// processOwner names this process for leases and claims.
func processOwner(io stdio) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s@%s:%d", incident.CLIActor(cliUser(io)).ID, host, os.Getpid())
}
