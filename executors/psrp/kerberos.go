package psrp

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/masterzen/winrm/soap"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/wsman"
	"github.com/ndrbot/ndrbot/executors/wsman/kerberos"
)

// kerberos builds the senders of a target with auth kerberos: one Kerberos
// transport (one ticket cache) for all its endpoints, each endpoint posting to
// its own URL — over http the transport seals every envelope (the out-of-box
// /PowerShell virtual directory), over https it authenticates each request.
func (e *Executor) kerberos(t config.Target) (SenderFactory, error) {
	user, realm := t.Username, t.Realm
	if u, r, ok := strings.Cut(t.Username, "@"); ok {
		user = u
		if realm == "" {
			realm = r
		}
	}
	switch {
	case user == "":
		return nil, errors.New("username: required (svc-ndrbot@CONTOSO.COM, or username and realm)")
	case realm == "":
		return nil, errors.New("realm: required (CONTOSO.COM), or give the username as user@REALM")
	}
	cfg := kerberos.Config{Username: user, Realm: strings.ToUpper(realm), KeytabFile: t.KeytabFile, Krb5Conf: t.Krb5Conf, SPN: t.SPN}
	if cfg.KeytabFile == "" {
		pw, err := wsman.Password(t)()
		if err != nil {
			return nil, err
		}
		cfg.Password = pw
	}
	tlsConf, err := t.ClientTLS(false)
	if err != nil {
		return nil, err
	}
	krb, err := kerberos.New(cfg, kerberos.WithTLSConfig(tlsConf), kerberos.WithDialer(e.dial))
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, krb.Close)
	return func(ep Endpoint) (Sender, error) {
		return SenderFunc(func(ctx context.Context, msg *soap.SoapMessage) (string, error) {
			body, err := krb.Post(ctx, ep.URL, []byte(msg.String()))
			var re *kerberos.ReplyError
			if errors.As(err, &re) && re.StatusCode == http.StatusInternalServerError {
				if f := wsman.ParseFault(string(re.Body)); f != nil {
					return "", f
				}
			}
			if err != nil {
				return "", err
			}
			return string(body), nil
		}), nil
	}, nil
}
