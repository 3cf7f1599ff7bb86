# bash-ll's start-up file (--rcfile for an interactive shell, BASH_ENV for the others): every
# program in /proc/cluster/loadlevellist becomes a function, under its path and, where PATH finds
# it, its name, that runs it through loadlevel-exec. Bash calls a function before a file, slashes
# in the name or not. The functions follow the list: checked at each prompt, with no process
# started unless it changed.
# shellcheck shell=bash

if [[ $- == *i* && -r ~/.bashrc ]]; then
	# shellcheck source=/dev/null
	. ~/.bashrc
fi

__openssi_ll_seen=
__openssi_ll_defined=()

__openssi_ll_follow() {
	local list=() path name
	[[ -r /proc/cluster/loadlevellist ]] && mapfile -t list < /proc/cluster/loadlevellist
	[[ "${list[*]}" != "$__openssi_ll_seen" ]] || return 0
	__openssi_ll_seen="${list[*]}"
	for name in "${__openssi_ll_defined[@]}"; do unset -f -- "$name"; done
	__openssi_ll_defined=()
	for path in "${list[@]}"; do
		# Only names a function can have and eval can take as they are.
		[[ $path =~ ^/[A-Za-z0-9._+/-]+$ ]] || continue
		# A job's own children are part of it and move with it: no job inside a job.
		eval "function $path { BASH_ENV= loadlevel-exec $path \"\$@\"; }"
		__openssi_ll_defined+=("$path")
		name=${path##*/}
		if [[ $(type -P -- "$name") == "$path" ]]; then
			eval "function $name { BASH_ENV= loadlevel-exec $path \"\$@\"; }"
			__openssi_ll_defined+=("$name")
		fi
	done
}

__openssi_ll_follow
if [[ $- == *i* ]]; then
	PROMPT_COMMAND="__openssi_ll_follow${PROMPT_COMMAND:+; $PROMPT_COMMAND}"
	PS1="(bash-ll) ${PS1:-\\s-\\v\\$ }"
fi
