package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/devstack"
	"github.com/acme/payments/internal/money"
	"github.com/acme/payments/internal/webhook"
)

// gatewayCommand plays a payment gateway against the API, so a live
// payment can be finished in development without signing by hand.
func gatewayCommand() *cli.Command {
	return &cli.Command{
		Name:  "gateway",
		Usage: "act as a payment gateway (development and testing)",
		Subcommands: []*cli.Command{{
			Name: "callback",
			Usage: "sign and send a gateway result for a payment attempt to POST /webhooks/GATEWAY on PAYMENTS_HTTP_ADDR " +
				"(the secret from PAYMENTS_WEBHOOK_SECRETS, else the one `starter dev` keeps under the data dir)",
			ArgsUsage: "PAYMENT_ID",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "status", Usage: "SUCCESS or FAILED (required)"},
				&cli.StringFlag{Name: "amount", Usage: "settled amount, e.g. 12.30 (default: the attempt's amount, read from the database; none if the attempt is not recorded yet)"},
				&cli.StringFlag{Name: "gateway", Value: devstack.DevGateway, Usage: "gateway name, as in PAYMENTS_WEBHOOK_SECRETS"},
				&cli.StringFlag{Name: "ref", Usage: "the gateway's reference of the payment (gateway_ref)"},
				&cli.StringFlag{Name: "failure-reason", Usage: "why the payment failed (with --status FAILED)"},
			},
			Action: gatewayCallback,
		}},
	}
}

func gatewayCallback(c *cli.Context) error {
	if c.Args().Len() != 1 {
		return usageError{errors.New("gateway callback takes one PAYMENT_ID")}
	}
	status := strings.ToUpper(c.String("status"))
	if status != "SUCCESS" && status != "FAILED" {
		return usageError{errors.New("gateway callback needs --status SUCCESS or --status FAILED")}
	}
	cfg, err := config.FromCLI(c)
	if err != nil {
		return usageError{err}
	}
	gateway := c.String("gateway")
	if gateway == "" {
		return usageError{errors.New("--gateway is empty")}
	}
	secret, err := gatewaySecret(cfg, gateway)
	if err != nil {
		return err
	}
	res := webhook.Result{PaymentID: c.Args().First(), Status: status, Amount: c.String("amount"),
		GatewayRef: c.String("ref"), FailureReason: c.String("failure-reason")}
	if res.Amount == "" {
		amount, found, err := attemptAmount(c.Context, cfg.MySQLDSN, res.PaymentID)
		if err != nil {
			return fmt.Errorf("look up the amount of payment %s (or pass --amount): %w", res.PaymentID, err)
		}
		if !found {
			fmt.Fprintf(os.Stderr, "payment %s is not recorded yet: sending no amount (the service keeps the result until the attempt arrives)\n", res.PaymentID)
		}
		res.Amount = amount
	}
	body, err := json.Marshal(res)
	if err != nil {
		return err
	}
	// What the service would refuse as invalid is bad usage here.
	if _, err := webhook.ParseResult(body); err != nil {
		return usageError{err}
	}

	target := "http://" + clientAddr(cfg.HTTPAddr) + "/webhooks/" + url.PathEscape(gateway)
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhook.Header, webhook.Sign(secret, time.Now(), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("send callback: %w", err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the reply: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("callback for payment %s refused: %s: %s", res.PaymentID, resp.Status, strings.TrimSpace(string(reply)))
	}
	fmt.Fprintf(os.Stderr, "callback %s for payment %s sent as gateway %s: %s\n", status, res.PaymentID, gateway, resp.Status)
	_, err = os.Stdout.Write(reply)
	return err
}

// gatewaySecret is gateway's secret in PAYMENTS_WEBHOOK_SECRETS or, when
// none is configured, the development secret of `starter dev`.
func gatewaySecret(cfg config.Config, gateway string) ([]byte, error) {
	secrets, err := config.ParseWebhookSecrets(cfg.WebhookSecrets)
	if err != nil {
		return nil, usageError{err}
	}
	if len(secrets) > 0 {
		if s, ok := secrets[gateway]; ok {
			return s, nil
		}
		return nil, fmt.Errorf("PAYMENTS_WEBHOOK_SECRETS has no secret for gateway %q", gateway)
	}
	if gateway != devstack.DevGateway {
		return nil, fmt.Errorf("no secret for gateway %q: PAYMENTS_WEBHOOK_SECRETS is empty, and `starter dev` makes one only for %s", gateway, devstack.DevGateway)
	}
	s, err := devstack.ReadDevWebhookSecret(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if s == "" {
		return nil, fmt.Errorf("no development webhook secret under %s: start `starter dev` once, or set PAYMENTS_WEBHOOK_SECRETS", cfg.DataDir)
	}
	return []byte(s), nil
}

// attemptAmount reads a payment attempt's amount from the ledger as the
// decimal text a gateway sends; found is false for an unknown payment.
func attemptAmount(ctx context.Context, dsn, paymentID string) (string, bool, error) {
	db, err := database.Open(ctx, dsn)
	if err != nil {
		return "", false, err
	}
	defer db.Close()
	var row struct {
		Amount   int64  `db:"payment_amount"`
		Currency string `db:"currency"`
	}
	err = db.GetContext(ctx, &row, "SELECT payment_amount, currency FROM payments WHERE payment_id = ?", paymentID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	amount, err := money.Format(row.Amount, row.Currency)
	return amount, err == nil, err
}

// clientAddr turns a listen address into one to dial: an empty or
// unspecified host is this machine.
func clientAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
