// Posts one event to the CinemaAbyss Events Service with an Idempotency-Key, retrying as the
// service's answers ask: the same key on every attempt of one event, so that a retry never
// publishes twice; a retry after connection errors, 5xx, 409 (the same key still in progress)
// and 429, waiting Retry-After when the answer has one; never after any other 4xx, which the
// same request would get again.
//
//	go run . [-url http://localhost:8082] [-type movie|user|payment] [-body JSON] [-key KEY] [-again]
//
// -again sends the event once more with the same key after it was stored, as a retry whose
// first answer was lost would: the service answers with the first answer, replayed.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"os"
	"strconv"
	"time"
)

// Attempts per event; the waits between them add up to about 15 s at most, plus Retry-After.
const maxAttempts = 6

// Answer is what the service finally said about one event.
type Answer struct {
	Status   int
	Body     []byte
	Replayed bool // Idempotent-Replayed: true, the first answer to this key again
}

// PostEvent posts body to url with key as its Idempotency-Key, retrying what may succeed later.
func PostEvent(ctx context.Context, client *http.Client, url string, body []byte, key string) (Answer, error) {
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		answer, wait, err := try(ctx, client, url, body, key)
		retryable := err != nil || retry(answer.Status)
		if !retryable {
			return answer, nil
		}
		if attempt == maxAttempts {
			if err != nil {
				return answer, fmt.Errorf("gave up after %d attempts: %w", attempt, err)
			}
			return answer, fmt.Errorf("gave up after %d attempts: the last answer was %d %s", attempt, answer.Status, answer.Body)
		}
		why := ""
		if wait > 0 {
			why = " (Retry-After)"
		} else {
			// Jitter, so that many clients do not come back at once.
			jitter, _ := rand.Int(rand.Reader, big.NewInt(int64(backoff)))
			wait = backoff/2 + time.Duration(jitter.Int64())/2
			backoff = min(2*backoff, 5*time.Second)
		}
		if err != nil {
			log.Printf("attempt %d: %v; retrying in %v", attempt, err, wait.Round(time.Millisecond))
		} else {
			log.Printf("attempt %d: %d; retrying in %v%s", attempt, answer.Status, wait.Round(time.Millisecond), why)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return answer, ctx.Err()
		}
	}
}

// try makes one attempt; wait is the answer's Retry-After, or 0.
func try(ctx context.Context, client *http.Client, url string, body []byte, key string) (Answer, time.Duration, error) {
	request, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Answer{}, 0, err
	}
	request.Header.Set("Content-Type", "application/json")
	request.Header.Set("Idempotency-Key", key)
	response, err := client.Do(request)
	if err != nil {
		return Answer{}, 0, err // refused, reset, timed out: the same key makes a retry safe
	}
	defer response.Body.Close()
	answer := Answer{Status: response.StatusCode, Replayed: response.Header.Get("Idempotent-Replayed") == "true"}
	if answer.Body, err = io.ReadAll(response.Body); err != nil {
		return Answer{}, 0, fmt.Errorf("reading the answer: %w", err)
	}
	var wait time.Duration
	if seconds, err := strconv.Atoi(response.Header.Get("Retry-After")); err == nil && seconds >= 0 {
		wait = time.Duration(seconds) * time.Second
	}
	return answer, wait, nil
}

// retry says whether a status may change on a retry of the same request.
func retry(status int) bool {
	switch {
	case status >= 500: // 500 not known to be stored, 503 at capacity: the key keeps it once
		return true
	case status == http.StatusConflict: // the first attempt with this key is still being served
		return true
	case status == http.StatusTooManyRequests: // over the rate limit
		return true
	default: // 2xx done; any other 4xx would be answered the same again
		return false
	}
}

func newKey() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		log.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func main() {
	base := flag.String("url", "http://localhost:8082", "the service's address")
	kind := flag.String("type", "movie", "movie, user or payment")
	body := flag.String("body", `{"movie_id": 1, "title": "Test Movie", "action": "viewed"}`, "the event, JSON")
	key := flag.String("key", "", "the Idempotency-Key (default: a new random one)")
	again := flag.Bool("again", false, "once stored, send the same event with the same key again")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("client: ")
	if *key == "" {
		*key = newKey() // one key per event, made once, before the first attempt
	}

	// Longer than the service's own request timeout (HTTP_REQUEST_TIMEOUT_MS, 15 s).
	client := &http.Client{Timeout: 20 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := *base + "/api/events/" + *kind

	sends := 1
	if *again {
		sends = 2
	}
	for i := 0; i < sends; i++ {
		answer, err := PostEvent(ctx, client, url, []byte(*body), *key)
		if err != nil {
			log.Print(err)
			os.Exit(1)
		}
		fmt.Printf("%d Idempotent-Replayed: %t %s\n", answer.Status, answer.Replayed, bytes.TrimSpace(answer.Body))
		if answer.Status/100 != 2 {
			os.Exit(1)
		}
	}
}
