package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/orders"
	"github.com/acme/payments/internal/service"
)

func orderCommand() *cli.Command {
	return &cli.Command{
		Name:      "order",
		Usage:     "show an order with its payments (sensitive fields masked unless --pii)",
		ArgsUsage: "ORDER_ID",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "pii", Usage: "show customer and payment details unmasked"}},
		Action: func(c *cli.Context) error {
			if c.Args().Len() != 1 {
				return usageError{errors.New("order takes one ORDER_ID")}
			}
			cfg, err := config.FromCLI(c)
			if err != nil {
				return usageError{err}
			}
			return withMySQL(c.Context, cfg, func(d *service.Deps) error {
				o, err := (&orders.Store{DB: d.DB, Keys: d.Keys, BlindIndex: d.BlindIndex}).Get(c.Context, c.Args().First())
				if err != nil {
					return err
				}
				return printJSON(o.JSON(c.Bool("pii")))
			})
		},
	}
}

func payCommand() *cli.Command {
	return &cli.Command{
		Name:      "pay",
		Usage:     "record a payment attempt for an order (PENDING until its gateway answers)",
		ArgsUsage: "ORDER_ID",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "amount", Usage: "amount in the order's currency, e.g. 12.30 (required)"},
			&cli.StringFlag{Name: "method", Usage: "CARD, UPI, NETBANKING, WALLET, BANK_TRANSFER, CASH or VOUCHER (required)"},
			&cli.StringFlag{Name: "payment-id", Usage: "the attempt's id (default: a new random one)"},
			&cli.StringFlag{Name: "details", Usage: "card number, account or wallet id"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Len() != 1 {
				return usageError{errors.New("pay takes one ORDER_ID")}
			}
			// Checked here rather than by urfave, whose check exits 1.
			if err := requireFlags(c, "amount", "method"); err != nil {
				return err
			}
			cfg, err := config.FromCLI(c)
			if err != nil {
				return usageError{err}
			}
			orderID := c.Args().First()
			return withDeps(c.Context, cfg, func(d *service.Deps) error {
				id := c.String("payment-id")
				if id == "" {
					var b [8]byte
					_, _ = rand.Read(b[:])
					id = "PAY-" + hex.EncodeToString(b[:])
				}
				out, err := service.NewLifecycle(d).Attempt(c.Context, ledger.Attempt{PaymentID: id, OrderID: orderID,
					Amount: c.String("amount"), Method: c.String("method"), Details: c.String("details")})
				if err != nil {
					return err
				}
				res := out.Result
				switch {
				case res.Code == ledger.CodeBadAmount || res.Code == ledger.CodeBadMethod:
					return usageError{fmt.Errorf("payment %s refused: %s", id, res.Message)}
				case res.Outcome == ledger.Rejected:
					return fmt.Errorf("payment %s refused: %s: %s", id, res.Code, res.Message)
				}
				note := ""
				if res.Outcome == ledger.Unchanged {
					note = " (recorded before: nothing changed)"
				}
				fmt.Printf("payment %s for order %s: %s%s\n", id, orderID, res.Status, note)
				return nil
			})
		},
	}
}

func printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}
