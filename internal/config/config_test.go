package config

import (
	"testing"

	"github.com/spf13/viper"
)

// TestExample_ShowsEveryKey: configs/arina.example.yaml shows every key of Config
// (cmd/arina's TestLoadConfig_Example checks that it loads and shows the defaults).
func TestExample_ShowsEveryKey(t *testing.T) {
	t.Parallel()
	const example = "../../configs/arina.example.yaml"
	file := viper.New()
	file.SetConfigFile(example)
	if err := file.ReadInConfig(); err != nil {
		t.Fatalf("reading %s: %v", example, err)
	}
	keys := Keys()
	if len(keys) < 50 {
		t.Fatalf("Keys() = %d keys, want every key of Config", len(keys))
	}
	for _, key := range keys {
		if !file.InConfig(key) {
			t.Errorf("%s does not show the key %s", example, key)
		}
	}
}
