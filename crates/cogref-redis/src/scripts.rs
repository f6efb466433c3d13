//! Every piece of logic that runs inside Redis, in one place to audit. Each script is atomic on
//! the server, which is what makes the lease and the version checks safe across a fleet.

use std::sync::LazyLock;

use redis::Script;

/// Takes the lease if it is free. `KEYS[1]` lease, `ARGV[1]` owner, `ARGV[2]` time to live (ms).
///
/// Idempotent for one owner value: if an earlier attempt of the same call took the lease and
/// its reply was lost, the retry finds its own owner and reports success.
pub(crate) static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
",
    )
});

/// Releases the lease only if it is still ours (compare-and-delete), and tells waiters.
/// `KEYS[1]` lease, `ARGV[1]` owner, `ARGV[2]` channel.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'released')
  return 1
end
return 0
",
    )
});

/// Compare-and-set of the token set on its version. `KEYS[1]` the set (a hash: `v` version,
/// `d` data), `ARGV[1]` the version the writer loaded (`''`: nothing stored), `ARGV[2]` the
/// data, `ARGV[3]` channel.
///
/// Returns `{1, new version}` or `{0, version found}`. A new entry's version starts at the
/// server's clock in microseconds (below 2^53, so exact in Lua's numbers), so versions do not
/// repeat even if Redis lost its data: a writer that loaded before the loss cannot match a
/// version issued after it.
pub(crate) static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.replicate_commands then redis.replicate_commands() end
local current = redis.call('HGET', KEYS[1], 'v')
if not current then current = '' end
if current ~= ARGV[1] then return {0, current} end
local nextv
if current == '' then
  local t = redis.call('TIME')
  nextv = string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2]))
else
  nextv = string.format('%d', tonumber(current) + 1)
end
redis.call('HSET', KEYS[1], 'v', nextv, 'd', ARGV[2])
redis.call('PUBLISH', ARGV[3], nextv)
return {1, nextv}
",
    )
});
