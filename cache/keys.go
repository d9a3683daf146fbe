package cache

// DefaultPrefix is the key prefix used when a view or loader is configured
// without one; it lets several services share one Redis without collisions.
const DefaultPrefix = "logto-proxy:"

// The Redis Cluster hash tags of the views. Every key of one view carries
// its view's tag, so that the scripts touching the snapshot, generation and
// lock together run on one slot, while different views spread over the
// cluster.
const (
	hierarchyTag = "{hierarchy}"
	usersTag     = "{users}"
)

// viewKeys names the Redis keys of one snapshot view. They are derived once
// from the prefix and the view's tag so that the layout lives in a single
// place (and in the package documentation).
type viewKeys struct {
	snapshot   string
	generation string
	lock       string
	fence      string
	announce   string
}

func newViewKeys(prefix, tag string) viewKeys {
	base := prefix + tag + ":"
	return viewKeys{
		snapshot:   base + "snapshot",
		generation: base + "generation",
		lock:       base + "lock",
		fence:      base + "fence",
		announce:   base + "announce",
	}
}

// newHierarchyKeys names the hierarchy view's keys.
func newHierarchyKeys(prefix string) viewKeys { return newViewKeys(prefix, hierarchyTag) }

// newUsersKeys names the users view's keys.
func newUsersKeys(prefix string) viewKeys { return newViewKeys(prefix, usersTag) }

// loaderKey is the Redis key of one Loader entry. It is not hash-tagged on
// purpose: entries are independent, and spreading them over the cluster
// avoids a hot slot.
func loaderKey(prefix, namespace, key string) string {
	return prefix + namespace + ":" + key
}
