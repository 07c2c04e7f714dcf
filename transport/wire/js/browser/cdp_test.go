package browser_test

// DevTools methods differ between the Chromium versions apt serves. These
// helpers detect what the browser has and fall back to the older method, so
// that every scenario runs and asserts the same thing on each of them.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/chromedp/cdproto"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// legacyEnv forces the fallback DevTools methods (HB_CDP_LEGACY=1), to test
// the path an older Chromium takes on a newer one.
const legacyEnv = "HB_CDP_LEGACY"

func forceLegacy() bool { return os.Getenv(legacyEnv) == "1" }

// emulateNetworkConditions is the method Chromium deprecated for
// emulateNetworkConditionsByRule plus overrideNetworkState; newer cdproto
// releases no longer generate it, older browsers (148 among them) only
// accept it. It also sets navigator.onLine and fires online/offline.
var emulateNetworkConditions = cdp.Command[emulateNetworkConditionsParams, cdp.Empty]{Method: "Network.emulateNetworkConditions"}

type emulateNetworkConditionsParams struct {
	Offline            bool    `json:"offline"`
	Latency            float64 `json:"latency"`
	DownloadThroughput float64 `json:"downloadThroughput"`
	UploadThroughput   float64 `json:"uploadThroughput"`
}

// byRuleMissing caches, per browser process, whether the newer method was
// refused, so that each page does not pay a failed call.
var byRuleMissing sync.Map // browser context → bool

// emulateOffline takes the page's network down (or up): requests fail, and
// navigator.onLine and its event follow, the requests first so that a page
// told it is online can dial at once. It uses the newer methods where the
// browser has them, unless legacy, and returns the method it used.
func emulateOffline(ctx context.Context, offline, legacy bool) (string, error) {
	key := chromedp.FromContext(ctx).Browser
	if missing, ok := byRuleMissing.Load(key); ok && missing.(bool) {
		legacy = true
	}
	if !legacy {
		_, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{{Offline: offline, DownloadThroughput: -1, UploadThroughput: -1}}})
		if err == nil {
			byRuleMissing.Store(key, false)
			_, err = chromedp.Call(ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{
				Offline: offline, DownloadThroughput: -1, UploadThroughput: -1})
			if err != nil {
				return "", fmt.Errorf("%s: %w", network.CommandOverrideNetworkState, err)
			}
			return network.CommandEmulateNetworkConditionsByRule, nil
		}
		if !isUnsupported(err) {
			return "", fmt.Errorf("%s: %w", network.CommandEmulateNetworkConditionsByRule, err)
		}
		byRuleMissing.Store(key, true)
	}
	_, err := chromedp.Call(ctx, emulateNetworkConditions, emulateNetworkConditionsParams{
		Offline: offline, DownloadThroughput: -1, UploadThroughput: -1})
	if err != nil {
		return "", fmt.Errorf("%s: %w", emulateNetworkConditions.Method, err)
	}
	return emulateNetworkConditions.Method, nil
}

// isUnsupported tells a method the browser lacks (-32601) or whose
// parameters it does not know yet (-32602) from any other failure.
func isUnsupported(err error) bool {
	var e *cdproto.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code == -32601 || e.Code == -32602
}
