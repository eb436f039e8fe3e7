package config

import (
	"crypto/tls"
	"fmt"

	"github.com/arina-dev/arina/store/redis"
)

// Store backends.
const (
	BackendEmbedded = "embedded" // the memory index, made durable by Pebble (store.durability)
	BackendRedis    = "redis"    // a Redis shared by several nodes
)

// RedisConfig is store.redis.
type RedisConfig struct {
	Addrs      []string `mapstructure:"addrs"`
	Mode       string   `mapstructure:"mode"`
	MasterName string   `mapstructure:"master_name"`
	Username   string   `mapstructure:"username"`
	Password   string   `mapstructure:"password"`
	DB         int      `mapstructure:"db"`
	KeyPrefix  string   `mapstructure:"key_prefix"`
	TLS        bool     `mapstructure:"tls"`
	TLSCAFile  string   `mapstructure:"tls_ca_file"` // PEM roots; empty: the system's
}

// redisOptions converts store.redis; nil unless store.backend is redis.
func (c *Config) redisOptions() (*redis.Options, error) {
	if c.Store.Backend != BackendRedis {
		return nil, nil
	}
	r := c.Store.Redis
	var tc *tls.Config
	if r.TLS || r.TLSCAFile != "" {
		var err error
		if tc, err = (ClientTLS{CAFile: r.TLSCAFile}).config(); err != nil {
			return nil, &ConfigError{Field: "store.redis.tls_ca_file", Value: r.TLSCAFile, Err: err}
		}
		if tc == nil {
			tc = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
	o := &redis.Options{Addrs: r.Addrs, Mode: r.Mode, MasterName: r.MasterName, Username: r.Username,
		Password: r.Password, TLS: tc, DB: r.DB, KeyPrefix: r.KeyPrefix}
	if err := o.Validate(); err != nil {
		return nil, &ConfigError{Field: "store.redis", Value: r.Addrs, Err: fmt.Errorf("%w: %v", ErrInvalidChoice, err)}
	}
	return o, nil
}
