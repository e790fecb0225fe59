package wfm

import (
	"context"
	"testing"
)

func TestBearerTokenMetadata(t *testing.T) {
	md, err := bearerToken{token: "abc", requireTLS: true}.GetRequestMetadata(context.Background())
	if err != nil || md["authorization"] != "Bearer abc" || len(md) != 1 {
		t.Fatalf("metadata %v %v", md, err)
	}
	if !(bearerToken{requireTLS: true}).RequireTransportSecurity() || (bearerToken{}).RequireTransportSecurity() {
		t.Fatal("RequireTransportSecurity")
	}
	if _, err := Dial("127.0.0.1:1", WithBearerToken("")); err == nil {
		t.Fatal("empty token accepted")
	}
}
