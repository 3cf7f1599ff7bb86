// SPDX-License-Identifier: GPL-2.0
/*
 * ssi_compat: the small part of OpenSSI's kernel interface that the KNOPPIX/OpenSSI live CD
 * keeps on a current kernel. OpenSSI's single-system-image kernel does not exist for today's
 * kernels; the cluster is formed in userland over the interconnect, and this module gives the
 * files that userland and users expect under /proc/cluster:
 *
 *   /proc/cluster/loadlevellist  programs to load-level, absolute paths, one a line. Reading
 *                                lists them; writing appends one or more newline-separated
 *                                paths, all or none: a bad path fails the write with EINVAL
 *                                and changes nothing.
 *   /proc/cluster/node_num       this node's number (1..125); root writes it once at boot.
 */
#include <linux/ctype.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#define SSI_MAX_NODE 125
#define LL_MAX_PATH 1024	/* one path, without its newline */
#define LL_MAX_ENTRIES 256	/* the whole list */
#define LL_MAX_WRITE 4096	/* one write() */

struct ll_entry {
	struct list_head list;
	char path[];
};

static LIST_HEAD(ll_list);
static unsigned int ll_count;
static DEFINE_MUTEX(ll_lock);
static int node_num;
static struct proc_dir_entry *cluster_dir;

static int ll_show(struct seq_file *m, void *v)
{
	struct ll_entry *e;

	mutex_lock(&ll_lock);
	list_for_each_entry(e, &ll_list, list)
		seq_printf(m, "%s\n", e->path);
	mutex_unlock(&ll_lock);
	return 0;
}

static int ll_open(struct inode *inode, struct file *file)
{
	return single_open(file, ll_show, NULL);
}

static bool ll_path_ok(const char *p, size_t len)
{
	size_t i;

	if (len == 0 || len > LL_MAX_PATH || p[0] != '/')
		return false;
	for (i = 0; i < len; i++)
		if (!isprint(p[i]))
			return false;
	return true;
}

static bool ll_in(struct list_head *head, const char *p, size_t len)
{
	struct ll_entry *e;

	list_for_each_entry(e, head, list)
		if (strlen(e->path) == len && !memcmp(e->path, p, len))
			return true;
	return false;
}

static ssize_t ll_write(struct file *file, const char __user *ubuf, size_t count, loff_t *ppos)
{
	LIST_HEAD(staged);
	struct ll_entry *e, *tmp;
	unsigned int added = 0;
	size_t start = 0, i;
	ssize_t ret = count;
	char *buf;

	if (count == 0)
		return 0;
	if (count > LL_MAX_WRITE)
		return -EINVAL;
	buf = memdup_user_nul(ubuf, count);
	if (IS_ERR(buf))
		return PTR_ERR(buf);

	mutex_lock(&ll_lock);
	for (i = 0; i <= count; i++) {
		size_t len;

		if (i < count && buf[i] != '\n')
			continue;
		len = i - start;
		if (len == 0 && i == count)
			break;		/* the trailing newline */
		if (!ll_path_ok(buf + start, len)) {
			ret = -EINVAL;
			goto undo;
		}
		if (!ll_in(&ll_list, buf + start, len) && !ll_in(&staged, buf + start, len)) {
			if (ll_count + added >= LL_MAX_ENTRIES) {
				ret = -ENOSPC;
				goto undo;
			}
			e = kmalloc(sizeof(*e) + len + 1, GFP_KERNEL);
			if (!e) {
				ret = -ENOMEM;
				goto undo;
			}
			memcpy(e->path, buf + start, len);
			e->path[len] = '\0';
			list_add_tail(&e->list, &staged);
			added++;
		}
		start = i + 1;
	}
	list_splice_tail(&staged, &ll_list);
	ll_count += added;
	mutex_unlock(&ll_lock);
	kfree(buf);
	return ret;

undo:
	list_for_each_entry_safe(e, tmp, &staged, list) {
		list_del(&e->list);
		kfree(e);
	}
	mutex_unlock(&ll_lock);
	kfree(buf);
	return ret;
}

static const struct proc_ops ll_ops = {
	.proc_open = ll_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
	.proc_write = ll_write,
};

static int nn_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%d\n", READ_ONCE(node_num));
	return 0;
}

static int nn_open(struct inode *inode, struct file *file)
{
	return single_open(file, nn_show, NULL);
}

static ssize_t nn_write(struct file *file, const char __user *ubuf, size_t count, loff_t *ppos)
{
	int value, err;

	err = kstrtoint_from_user(ubuf, count, 10, &value);
	if (err)
		return err;
	if (value < 1 || value > SSI_MAX_NODE)
		return -EINVAL;
	WRITE_ONCE(node_num, value);
	return count;
}

static const struct proc_ops nn_ops = {
	.proc_open = nn_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
	.proc_write = nn_write,
};

static int __init ssi_compat_init(void)
{
	cluster_dir = proc_mkdir("cluster", NULL);
	if (!cluster_dir)
		return -ENOMEM;
	if (!proc_create("loadlevellist", 0644, cluster_dir, &ll_ops) ||
	    !proc_create("node_num", 0644, cluster_dir, &nn_ops)) {
		proc_remove(cluster_dir);
		return -ENOMEM;
	}
	return 0;
}

static void __exit ssi_compat_exit(void)
{
	struct ll_entry *e, *tmp;

	proc_remove(cluster_dir);
	list_for_each_entry_safe(e, tmp, &ll_list, list) {
		list_del(&e->list);
		kfree(e);
	}
}

module_init(ssi_compat_init);
module_exit(ssi_compat_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("OpenSSI compatibility: /proc/cluster for the KNOPPIX/OpenSSI live CD");
MODULE_AUTHOR("openssi-live");
